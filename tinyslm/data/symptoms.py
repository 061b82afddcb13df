"""The default corpus: patient-style symptom descriptions, generated on the spot.

When you run ``tinyslm train`` without pointing it at any data, the model trains on text that
this module writes itself::

    For three days I've had a high temperature, and my chest hurts when I breathe in. No rash, though.
    My daughter's nose won't stop running and she keeps sneezing. It started on Monday.

Why generate a corpus instead of shipping or downloading one?

- **It works offline.** Nothing to fetch, so the first lesson runs on a laptop on a train.
- **No license questions.** Every sentence here was written for this package.
- **It is deterministic.** The same ``seed`` gives the same text, byte for byte, so a run can be
  reproduced from its config alone.
- **The labels are known.** Every description comes from one condition, so the same generator
  also gives labelled ``(label, text)`` pairs for the classification lessons. The 24 labels are
  the ones of the public Symptom2Disease dataset, which the capstone uses for evaluation (none of
  its rows were used to write this file).

How it works: a table of conditions (:data:`CONDITIONS`) lists each condition's typical
symptoms, most characteristic first, and each symptom (:data:`SYMPTOMS`) has several lay
phrasings -- the way a patient would say it, not the way a textbook would. A description picks
2-5 symptoms, phrases them, and wraps them in one of many sentence patterns, sometimes with a
timeline ("since Tuesday"), a symptom the patient does *not* have ("No fever, though."), a typical
trigger, or a detail that has nothing to do with it ("I work night shifts."). A small language
model trained on this learns grammar, a lay vocabulary, and which symptoms go together.

**This is teaching material, not medical advice.** The table encodes common textbook
associations only: real illnesses vary, overlap, and need a clinician to tell them apart.

Phrasings are written once but can be told about the writer or about someone else. Words that
refer to the patient are tokens: ``{I}``, ``{me}``, ``{my}``, ``{I'm}``, ``{I've}``, and verbs
that change with the person are written ``{first|third}`` (``{I} {keep|keeps} coughing``). So
``"{my} chest hurts when {I} {breathe|breathes} in"`` becomes "my chest hurts when I breathe in",
or "my son's chest hurts when he breathes in" when a parent is writing.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "Condition",
    "Description",
    "Symptom",
    "CONDITIONS",
    "SYMPTOMS",
    "generate_corpus",
    "generate_examples",
]


@dataclass(frozen=True)
class Symptom:
    """One symptom and the ways a patient might describe it.

    ``name`` is a short noun phrase that reads well after "no" and "the" ("No rash, though.")
    and after "any" -- or after "a" when ``countable`` ("I haven't had a cough"). ``phrasings``
    are clauses with person tokens; ``negations`` are optional extra clauses that deny the
    symptom ("{I} {haven't|hasn't} been coughing").
    """

    id: str
    name: str
    phrasings: tuple[str, ...]
    negations: tuple[str, ...] = ()
    countable: bool = False


@dataclass(frozen=True)
class Condition:
    """A condition (the label) with its typical symptoms, most characteristic first.

    ``deny`` lists symptoms the condition typically does *not* have and that a patient (or a
    doctor asking "any fever?") would naturally rule out. ``course`` sets the timescale of the
    story: ``"days"``, ``"weeks"`` or ``"months"``. ``clues`` are typical circumstances
    ("it's worse after big meals"); ``children`` says whether a parent may be the one writing.
    """

    label: str
    symptoms: tuple[Symptom, ...]
    deny: tuple[Symptom, ...]
    course: str
    clues: tuple[str, ...] = ()
    children: bool = True


@dataclass(frozen=True)
class Description:
    """One generated description and what went into it (used by tests and the lessons)."""

    label: str
    text: str
    symptoms: tuple[str, ...]  # ids of the symptoms described
    negated: str | None  # id of the symptom ruled out, if any


# --------------------------------------------------------------------------------------------
# The symptom table. Phrasings use person tokens (see the module docstring); keep them as
# clauses without a capital letter or final full stop, so they can go anywhere in a sentence.
# --------------------------------------------------------------------------------------------

_SYMPTOM_LIST = (
    # --- general ---
    Symptom("fever", "fever", (
        "{I've} had a high temperature",
        "{I've} been running a fever",
        "{I} {feel|feels} hot and feverish",
        "{my} temperature keeps going up and down",
        "{I've} had a fever that just won't break",
    ), negations=("{my} temperature has been normal", "{I} {haven't|hasn't} had a temperature")),
    Symptom("chills", "chills", (
        "{I} {keep|keeps} getting chills",
        "{I've} been shivering even under a blanket",
        "{I} {get|gets} bouts of shaking and feeling freezing cold",
        "{my} teeth chatter even though the room is warm",
    ), negations=("{I} {haven't|hasn't} been shivering",)),
    Symptom("sweats", "night sweats", (
        "{I} {wake|wakes} up drenched in sweat",
        "{I've} been sweating a lot, especially at night",
        "{I} {sweat|sweats} so much at night that the sheets get soaked",
        "{I} {break|breaks} out in heavy sweats",
    )),
    Symptom("tiredness", "tiredness", (
        "{I'm} exhausted all the time",
        "{I've} been feeling really tired and weak",
        "{I} {have|has} no energy at all",
        "even small tasks wear {me} out",
        "{I} could sleep all day",
    )),
    Symptom("loss_of_appetite", "loss of appetite", (
        "{I've} lost {my} appetite",
        "{I} {don't|doesn't} feel like eating",
        "{I've} barely eaten anything",
        "food just doesn't appeal to {me}",
    )),
    Symptom("body_aches", "body aches", (
        "{I} {ache|aches} all over",
        "every muscle in {my} body hurts",
        "{my} whole body aches",
        "{my} muscles feel sore and heavy",
    )),
    Symptom("weight_loss", "weight loss", (
        "{I've} lost weight without trying",
        "{my} clothes have gotten loose",
        "{I've} dropped a few kilos without dieting",
        "{I've} been losing weight for no reason",
    ), negations=("{my} weight has stayed the same",)),
    Symptom("swollen_glands", "swollen glands", (
        "the glands in {my} neck are swollen",
        "{I've} got tender lumps under {my} jaw",
        "{my} neck glands feel puffy",
    )),
    # --- head, nerves and eyes ---
    Symptom("headache", "headaches", (
        "{I've} had a headache that won't go away",
        "{my} head has been pounding",
        "{I} {keep|keeps} getting headaches",
        "{I've} had a dull ache across {my} forehead",
        "{my} head really hurts",
    )),
    Symptom("throbbing_headache", "throbbing headaches", (
        "{I} {get|gets} a throbbing pain on one side of {my} head",
        "{I} {get|gets} pounding headaches that last for hours",
        "the headaches are so bad that {I} {have|has} to lie down in a dark room",
        "{I} {get|gets} a pulsing pain behind one eye",
    )),
    Symptom("aura", "flashing lights", (
        "{I} {see|sees} zigzag lines before the headache starts",
        "{I} {get|gets} flashing lights in {my} vision beforehand",
        "part of {my} vision goes wavy before the pain",
    )),
    Symptom("light_sensitivity", "sensitivity to light", (
        "bright light hurts {my} eyes",
        "{I} can't stand bright lights",
        "{I} {have|has} to close the curtains because light makes it worse",
    )),
    Symptom("sound_sensitivity", "sensitivity to noise", (
        "noise makes everything worse for {me}",
        "even normal sounds seem far too loud to {me}",
        "{I} can't bear any noise",
    )),
    Symptom("dizziness", "dizziness", (
        "{I} {feel|feels} dizzy",
        "the room spins when {I} {stand|stands} up",
        "{I've} been feeling lightheaded",
        "{I} {get|gets} dizzy spells",
    )),
    Symptom("blurred_vision", "blurred vision", (
        "{my} vision goes blurry",
        "things look fuzzy to {me}",
        "{I'm} having trouble seeing clearly",
        "{my} eyesight seems worse than usual",
    )),
    Symptom("pain_behind_eyes", "pain behind the eyes", (
        "it hurts behind {my} eyes",
        "{I've} had a deep pain behind {my} eyes",
        "moving {my} eyes hurts",
    )),
    Symptom("itchy_eyes", "itchy eyes", (
        "{my} eyes are itchy and red",
        "{I} can't stop rubbing {my} eyes",
        "{my} eyes feel itchy and gritty",
    )),
    Symptom("watery_eyes", "watery eyes", (
        "{my} eyes are watering",
        "{my} eyes keep streaming",
        "{my} eyes won't stop watering",
    )),
    # --- nose, throat and chest ---
    Symptom("runny_nose", "runny nose", (
        "{my} nose won't stop running",
        "{I've} had a runny nose",
        "{I'm} going through boxes of tissues",
        "{my} nose is constantly dripping",
    ), countable=True),
    Symptom("blocked_nose", "blocked nose", (
        "{my} nose is completely blocked",
        "{I} can't breathe through {my} nose",
        "{I'm} really stuffed up",
    ), countable=True),
    Symptom("sneezing", "sneezing", (
        "{I} {keep|keeps} sneezing",
        "{I've} been sneezing nonstop",
        "{I} {sneeze|sneezes} several times in a row",
        "{I} {get|gets} sneezing fits",
    )),
    Symptom("sore_throat", "sore throat", (
        "{my} throat is sore",
        "it hurts to swallow",
        "{I've} got a scratchy throat",
        "{my} throat feels raw",
    ), negations=("{my} throat is fine",), countable=True),
    Symptom("nosebleeds", "nosebleeds", (
        "{I've} had a few nosebleeds",
        "{my} nose has been bleeding for no reason",
        "{I} {get|gets} nosebleeds out of nowhere",
    )),
    Symptom("bleeding_gums", "bleeding gums", (
        "{my} gums bleed when {I} {brush|brushes} {my} teeth",
        "{I've} noticed blood on {my} toothbrush",
        "{my} gums have been bleeding a little",
    )),
    Symptom("cough", "cough", (
        "{I've} had a dry cough",
        "{I} {keep|keeps} coughing",
        "{I've} got a nagging cough",
        "{I} can't stop coughing, especially at night",
        "{I've} had a cough that won't go away",
    ), negations=("{I} {haven't|hasn't} been coughing",), countable=True),
    Symptom("phlegm", "phlegm", (
        "{I'm} coughing up thick yellow phlegm",
        "{I've} been bringing up green mucus",
        "there's phlegm every time {I} {cough|coughs}",
        "{I} {cough|coughs} up rusty-looking mucus",
    )),
    Symptom("wheezing", "wheezing", (
        "{I've} been wheezing",
        "there's a whistling sound when {I} {breathe|breathes}",
        "{my} chest wheezes, especially at night",
        "{I} {make|makes} a wheezy noise when {I} {breathe|breathes} out",
    )),
    Symptom("short_breath", "shortness of breath", (
        "{I} {get|gets} out of breath really easily",
        "{I} can't catch {my} breath",
        "{I} {feel|feels} short of breath even walking up the stairs",
        "{I'm} struggling to breathe",
        "{I} {get|gets} breathless doing the smallest things",
    ), negations=("{my} breathing is fine",)),
    Symptom("chest_tightness", "chest tightness", (
        "{my} chest feels tight",
        "it feels like there's a band around {my} chest",
        "{I} {get|gets} a tight, heavy feeling in {my} chest",
    )),
    Symptom("chest_pain", "chest pain", (
        "{I've} had pains in {my} chest",
        "{my} chest feels heavy and sore",
        "{I} {get|gets} a pressing pain in {my} chest",
    ), negations=("there's no pain in {my} chest",)),
    Symptom("pleuritic_pain", "sharp chest pain", (
        "{my} chest hurts when {I} {breathe|breathes} in",
        "{I} {get|gets} a stabbing pain in {my} chest when {I} {cough|coughs}",
        "it hurts on one side of {my} chest when {I} {take|takes} a deep breath",
    )),
    Symptom("palpitations", "palpitations", (
        "{my} heart pounds",
        "{I} can feel {my} heart racing",
        "{my} heartbeat feels like it's thumping in {my} chest",
    )),
    # --- stomach and bowels ---
    Symptom("nausea", "nausea", (
        "{I} {feel|feels} sick to {my} stomach",
        "{I've} been feeling queasy",
        "{I} {keep|keeps} feeling like {I'm} going to throw up",
        "{I} {feel|feels} nauseous most of the day",
    )),
    Symptom("vomiting", "vomiting", (
        "{I've} been throwing up",
        "{I've} vomited a few times",
        "{I} can't keep anything down",
        "{I've} been sick several times",
    ), negations=("{I} {haven't|hasn't} thrown up",)),
    Symptom("diarrhea", "diarrhea", (
        "{I've} had diarrhea",
        "{I've} had loose, watery stools",
        "{I've} been running to the toilet all day",
        "{my} stomach has been really upset and {I've} had the runs",
    ), negations=("{my} bowels are normal",)),
    Symptom("constipation", "constipation", (
        "{I've} been really constipated",
        "{I} can barely go to the toilet",
        "{I} {have|has} to strain a lot when {I} {go|goes}",
        "{I} {haven't|hasn't} had a proper bowel movement in days",
    )),
    Symptom("stomach_pain", "stomach pain", (
        "{my} stomach hurts",
        "{I've} had cramps in {my} belly",
        "{I've} had a dull pain in {my} stomach",
        "{my} tummy aches",
        "there's a constant ache in {my} abdomen",
    )),
    Symptom("upper_stomach_pain", "burning stomach pain", (
        "{I} {get|gets} a burning pain in the top of {my} stomach",
        "{I've} had a gnawing pain just below {my} ribs",
        "{my} stomach burns when it's empty",
        "{I} {get|gets} a sharp pain between {my} belly button and breastbone",
    )),
    Symptom("bloating", "bloating", (
        "{my} stomach feels bloated",
        "{I} {feel|feels} full and swollen after eating",
        "{my} belly gets really bloated",
        "{my} stomach feels tight and puffed up",
    )),
    Symptom("burping", "burping", (
        "{I} {keep|keeps} burping",
        "{I've} been belching a lot",
        "{I} {burp|burps} constantly after meals",
    )),
    Symptom("early_fullness", "fullness after small meals", (
        "{I} {feel|feels} full after only a few bites",
        "{I} can't finish a normal meal anymore",
        "even a small meal makes {me} feel stuffed",
    )),
    Symptom("heartburn", "heartburn", (
        "{I} {get|gets} a burning feeling in {my} chest after eating",
        "{I've} had really bad heartburn",
        "there's a burning behind {my} breastbone, especially when {I} {lie|lies} down",
        "{my} chest burns after meals",
    )),
    Symptom("acid_reflux", "acid coming up", (
        "sour liquid comes up into {my} mouth",
        "{I} {get|gets} a bitter, acid taste in {my} mouth",
        "food sometimes comes back up into {my} throat",
        "{I} {wake|wakes} up with a sour taste in {my} mouth",
    )),
    Symptom("trouble_swallowing", "trouble swallowing", (
        "food feels like it gets stuck on the way down",
        "{I've} had trouble swallowing",
        "{I} {feel|feels} like there's a lump in {my} throat",
        "swallowing has become uncomfortable for {me}",
    )),
    Symptom("hoarse_voice", "hoarseness", (
        "{my} voice has gone hoarse",
        "{I} {sound|sounds} croaky, especially in the mornings",
        "{my} voice keeps cracking",
    )),
    Symptom("black_stools", "black stools", (
        "{my} poo has been black and sticky",
        "{I've} noticed dark, tarry stools",
        "{my} stools look almost black",
    )),
    Symptom("rectal_bleeding", "blood in the stool", (
        "there's bright red blood on the toilet paper",
        "{I've} noticed blood after going to the toilet",
        "{I} {see|sees} blood in the toilet bowl after a bowel movement",
    )),
    Symptom("anal_itching", "itching around the bottom", (
        "{my} bottom is really itchy",
        "{I've} got itching around {my} back passage",
        "{I} {itch|itches} down there all the time",
    )),
    Symptom("anal_pain", "pain when sitting", (
        "it hurts when {I} {sit|sits} down",
        "going to the toilet is painful for {me}",
        "{I've} got a sore, throbbing pain around {my} bottom",
    )),
    Symptom("anal_lump", "lumps around the bottom", (
        "{I} can feel a lump around {my} bottom",
        "there's a swelling near {my} back passage",
        "something bulges out when {I} {go|goes} to the toilet",
    )),
    Symptom("mucus_stool", "mucus on the toilet paper", (
        "{I've} noticed some slimy mucus on the toilet paper",
        "there's a bit of mucus when {I} {wipe|wipes}",
        "{my} underwear gets a little damp and slimy",
    )),
    # --- liver and urine ---
    Symptom("yellow_skin", "yellowing of the skin", (
        "{my} skin has gone yellow",
        "{I} {look|looks} yellowish",
        "people keep telling {me} that {I} {look|looks} yellow",
    )),
    Symptom("yellow_eyes", "yellow eyes", (
        "the whites of {my} eyes have turned yellow",
        "{my} eyes look yellow",
        "{my} eyes have a yellow tinge",
    )),
    Symptom("dark_urine", "dark urine", (
        "{my} pee is really dark, like tea",
        "{my} urine has turned dark brown",
        "{my} pee is the color of cola",
    )),
    Symptom("pale_stools", "pale stools", (
        "{my} poo has gone very pale",
        "{my} stools are a light, clay color",
        "{my} poo looks grayish",
    )),
    Symptom("burning_urination", "burning when peeing", (
        "it burns when {I} {pee|pees}",
        "{I} {get|gets} a stinging pain when {I} {pass|passes} urine",
        "peeing really hurts",
        "there's a burning feeling every time {I} {go|goes} to the toilet",
    ), negations=("it doesn't hurt when {I} {pee|pees}",)),
    Symptom("frequent_urination", "frequent urination", (
        "{I} {need|needs} to pee all the time",
        "{I'm} going to the toilet every half hour",
        "{I} {keep|keeps} getting up at night to pee",
        "{I'm} peeing far more often than usual",
    )),
    Symptom("urgency", "sudden urges to pee", (
        "{I} suddenly {need|needs} to go and can barely hold it",
        "{I} {get|gets} a sudden urge to pee, but only a little comes out",
        "{I} {feel|feels} like {I} {need|needs} to pee again right after going",
    )),
    Symptom("cloudy_urine", "cloudy urine", (
        "{my} pee is cloudy and smells strong",
        "{my} urine smells bad",
        "{my} pee looks murky",
    )),
    Symptom("blood_in_urine", "blood in the urine", (
        "there's a bit of blood in {my} pee",
        "{my} urine looks pinkish",
        "{I've} noticed pink-tinged urine",
    )),
    Symptom("lower_belly_pain", "pain in the lower belly", (
        "{I've} got pressure low down in {my} belly",
        "{I} {have|has} an ache just above {my} pubic bone",
        "{my} lower tummy aches",
    )),
    Symptom("back_pain", "back pain", (
        "{my} lower back aches",
        "{I've} got a dull pain in {my} lower back",
        "there's an ache in {my} side, just under the ribs",
    )),
    Symptom("thirst", "unusual thirst", (
        "{I'm} thirsty all the time",
        "{I} can't stop drinking water",
        "{my} mouth is always dry, no matter how much {I} {drink|drinks}",
    )),
    Symptom("hunger", "constant hunger", (
        "{I'm} hungry all the time, even after eating",
        "{I'm} always starving",
        "{I} {feel|feels} hungry again soon after a meal",
    )),
    Symptom("slow_healing", "slow healing", (
        "cuts and scrapes take ages to heal",
        "a small cut on {my} foot still hasn't healed",
        "{my} wounds heal really slowly",
    )),
    Symptom("tingling_feet", "tingling in the feet", (
        "{my} feet tingle",
        "{I've} lost some feeling in {my} toes",
        "{I} {get|gets} pins and needles in {my} feet",
    )),
    # --- joints, neck and limbs ---
    Symptom("joint_pain", "joint pain", (
        "{my} joints hurt",
        "{my} knees and fingers ache",
        "{I've} had pain in {my} joints",
        "{my} hands and wrists are painful",
    ), negations=("{my} joints are fine",)),
    Symptom("morning_stiffness", "stiffness in the joints", (
        "{my} joints are stiff in the morning",
        "it takes {me} ages to get moving in the morning",
        "{I} {feel|feels} really stiff when {I} first {get|gets} up",
    )),
    Symptom("swollen_joints", "swollen joints", (
        "{my} knuckles are swollen",
        "{my} knees look puffy and swollen",
        "{my} joints are swollen and warm",
    )),
    Symptom("reduced_movement", "trouble moving", (
        "{I} {struggle|struggles} to open jars",
        "{I} can't bend {my} knees properly",
        "stairs have become really hard for {me}",
        "{my} fingers don't move as well as they used to",
    )),
    Symptom("creaky_joints", "creaking joints", (
        "{my} knees creak and grind when {I} {move|moves}",
        "{I} can hear {my} joints cracking",
        "{my} knees click on the stairs",
    )),
    Symptom("neck_pain", "neck pain", (
        "{my} neck hurts",
        "{I've} had a constant ache in {my} neck",
        "{I've} got pain at the back of {my} neck",
        "{my} neck is sore most of the day",
    )),
    Symptom("neck_stiffness", "neck stiffness", (
        "{my} neck is really stiff",
        "{I} can't turn {my} head properly",
        "it's hard for {me} to look over {my} shoulder",
        "{my} neck feels locked up in the mornings",
    ), negations=("{I} can move {my} neck just fine",)),
    Symptom("arm_pain", "pain down the arms", (
        "the pain spreads into {my} shoulder and arm",
        "{I've} had pain running down {my} arm",
        "{my} shoulders ache all the time",
    )),
    Symptom("tingling_hands", "pins and needles", (
        "{I} {get|gets} pins and needles in {my} hands",
        "{my} fingers go numb",
        "{my} arms feel tingly",
    )),
    Symptom("weak_hands", "weakness in the hands", (
        "{my} hands feel weak",
        "{I} {keep|keeps} dropping things",
        "{my} grip isn't as strong as it used to be",
    )),
    Symptom("bulging_veins", "bulging veins", (
        "{I've} got twisted, bulging veins on {my} legs",
        "the veins on {my} calves stick out",
        "{I} can see blue, lumpy veins behind {my} knees",
    )),
    Symptom("heavy_legs", "aching legs", (
        "{my} legs feel heavy and achy",
        "{my} legs ache after standing for a long time",
        "{my} legs throb by the evening",
    )),
    Symptom("swollen_ankles", "swollen ankles", (
        "{my} ankles swell up by the end of the day",
        "{my} feet and ankles are puffy",
        "{my} socks leave deep marks on {my} ankles",
    )),
    Symptom("leg_cramps", "leg cramps", (
        "{I} {get|gets} cramps in {my} calves at night",
        "{my} legs cramp up in bed",
        "{I} {wake|wakes} up with painful cramps in {my} legs",
    )),
    Symptom("leg_skin_changes", "skin discoloration", (
        "the skin around {my} ankles has gone brownish",
        "the skin on {my} lower legs looks darker and dry",
        "there's a brown stain on the skin near {my} ankle",
    )),
    # --- skin ---
    Symptom("rash", "rash", (
        "{I've} got a red rash",
        "{I've} come out in a rash",
        "a rash has spread across {my} chest and back",
        "there's a blotchy rash on {my} skin",
    ), negations=("{my} skin is clear",), countable=True),
    Symptom("itching", "itching", (
        "{I'm} itching all the time",
        "{my} skin is really itchy",
        "{I} can't stop scratching",
        "the itching is worst at night",
    )),
    Symptom("blisters", "blisters", (
        "there are little fluid-filled blisters on {my} skin",
        "{I've} got small blisters all over",
        "the spots have turned into blisters",
    )),
    Symptom("scabs", "scabs", (
        "the spots have started to crust over",
        "some of the blisters have scabbed",
        "the older spots are drying into scabs",
    )),
    Symptom("hives", "hives", (
        "{I've} come out in hives",
        "{I've} got raised, itchy welts",
        "big red bumps keep appearing on {my} skin",
    )),
    Symptom("facial_swelling", "swelling of the face", (
        "{my} lips and eyes are swollen",
        "{my} face has puffed up",
        "{my} eyelids are puffy",
    )),
    Symptom("peeling_skin", "peeling skin", (
        "{my} skin has started peeling",
        "the skin is flaking off in places",
        "{I've} got patches of dry, peeling skin",
    )),
    Symptom("face_spots", "pimples", (
        "{I've} got lots of pimples on {my} face",
        "{my} face keeps breaking out",
        "{I} {have|has} red spots on {my} forehead and chin",
        "{my} skin breaks out constantly",
    )),
    Symptom("blackheads", "blackheads", (
        "{I've} got blackheads on {my} nose",
        "{I} {have|has} loads of whiteheads and blackheads",
        "{my} pores look clogged",
    )),
    Symptom("oily_skin", "oily skin", (
        "{my} skin is really oily",
        "{my} face gets greasy by lunchtime",
        "{my} forehead is always shiny",
    )),
    Symptom("cysts", "painful lumps", (
        "{I} {get|gets} painful lumps under the skin",
        "some of the spots are deep and sore",
        "{I've} got big, painful cysts along {my} jaw",
    )),
    Symptom("body_spots", "spots on the back", (
        "there are spots on {my} back and chest",
        "{my} back is covered in pimples",
        "{I} {get|gets} breakouts on {my} shoulders",
    )),
    Symptom("acne_marks", "scarring", (
        "the spots leave dark marks",
        "{I'm} getting little scars where old spots were",
        "{my} skin is marked from old pimples",
    )),
    Symptom("ring_rash", "ring-shaped rash", (
        "{I've} got a red, ring-shaped rash",
        "there's a round red patch with a clearer middle on {my} skin",
        "there's an itchy red rash in {my} groin",
        "a red patch with raised edges keeps getting bigger",
    )),
    Symptom("cracked_toes", "cracked skin between the toes", (
        "the skin between {my} toes is cracked and sore",
        "{my} feet are peeling between the toes",
        "the skin between {my} toes is white and soggy",
    )),
    Symptom("discolored_patches", "discolored patches", (
        "{I've} got lighter patches on {my} skin",
        "there are discolored patches on {my} chest",
        "some patches of {my} skin are darker than the rest",
    )),
    Symptom("scaly_plaques", "scaly patches", (
        "{I've} got red patches covered in silvery scales",
        "thick, scaly patches have come up on {my} elbows and knees",
        "{my} skin has raised, flaky patches",
    )),
    Symptom("cracked_skin", "cracked skin", (
        "{my} skin is so dry that it cracks and bleeds",
        "the patches crack and sometimes bleed",
        "the skin on {my} hands has split open",
    )),
    Symptom("nail_changes", "nail changes", (
        "{my} nails have little pits in them",
        "{my} nails are thick and crumbly",
        "{my} fingernails have turned yellowish and lifted",
    )),
    Symptom("scalp_flakes", "flaky scalp", (
        "{my} scalp is flaky and itchy",
        "{I've} got what looks like really bad dandruff",
        "there are scaly patches in {my} hair",
    )),
    Symptom("sores", "sores", (
        "{I've} got red sores around {my} nose and mouth",
        "sores have appeared around {my} mouth",
        "there are red, weepy sores on {my} face",
    )),
    Symptom("crusts", "crusty sores", (
        "the sores burst and leave a yellow crust",
        "the sores have honey-colored crusts",
        "the spots ooze and then crust over",
    )),
    Symptom("spreading_sores", "spreading sores", (
        "the sores are spreading to other parts of {my} face",
        "new sores keep popping up wherever {I} {scratch|scratches}",
        "it has spread to {my} hands",
    )),
)

SYMPTOMS: dict[str, Symptom] = {s.id: s for s in _SYMPTOM_LIST}


def _condition(label: str, course: str, symptoms: str, deny: str, clues: tuple[str, ...] = (),
               children: bool = True) -> Condition:
    """Builds a :class:`Condition` from space-separated symptom ids (keeps the table short)."""
    return Condition(
        label=label,
        symptoms=tuple(SYMPTOMS[i] for i in symptoms.split()),
        deny=tuple(SYMPTOMS[i] for i in deny.split()),
        course=course,
        clues=clues,
        children=children,
    )


# The 24 labels of the Symptom2Disease dataset, spelled exactly as there.
_CONDITION_LIST = (
    _condition(
        "Acne", "months",
        "face_spots blackheads oily_skin cysts body_spots acne_marks",
        deny="fever blisters peeling_skin",
        clues=("it gets worse when {I'm} stressed", "{I've} tried lots of face washes, but nothing works"),
    ),
    _condition(
        "Arthritis", "months",
        "joint_pain morning_stiffness swollen_joints reduced_movement creaky_joints tiredness",
        deny="fever rash tingling_hands",
        clues=("it's worse in cold, damp weather", "{I} {loosen|loosens} up a bit once {I} {get|gets} going"),
        children=False,
    ),
    _condition(
        "Bronchial Asthma", "months",
        "wheezing short_breath chest_tightness cough tiredness",
        deny="fever chest_pain sore_throat",
        clues=("it gets worse when {I} {exercise|exercises}", "cold air sets it off",
               "it's worse around dust and smoke", "it wakes {me} up at night"),
    ),
    _condition(
        "Cervical spondylosis", "months",
        "neck_pain neck_stiffness headache arm_pain tingling_hands weak_hands dizziness",
        deny="fever joint_pain swollen_joints",
        clues=("{I} {spend|spends} hours hunched over a laptop", "it's worse when {I} {look|looks} down at {my} phone"),
        children=False,
    ),
    _condition(
        "Chicken pox", "days",
        "rash blisters itching fever tiredness loss_of_appetite headache scabs",
        deny="cough vomiting diarrhea",
        clues=("the spots started on {my} tummy and spread to {my} face",
               "a few children at {my} school have had spots recently"),
    ),
    _condition(
        "Common Cold", "days",
        "runny_nose blocked_nose sneezing sore_throat cough headache fever watery_eyes tiredness",
        deny="short_breath rash vomiting chest_pain",
        clues=("a lot of people around {me} have been ill", "it started with a tickle in {my} throat"),
    ),
    _condition(
        "Dengue", "days",
        "fever headache pain_behind_eyes body_aches joint_pain rash nausea vomiting tiredness bleeding_gums",
        deny="cough runny_nose sore_throat",
        clues=("{I've} been bitten by mosquitoes a lot recently", "there are lots of mosquitoes where we live",
               "{I} got back from a trip to Southeast Asia last week"),
    ),
    _condition(
        "Dimorphic Hemorrhoids", "weeks",
        "rectal_bleeding anal_itching anal_pain anal_lump constipation mucus_stool",
        deny="fever stomach_pain weight_loss diarrhea",
        clues=("{I} {sit|sits} at a desk all day", "{I} {don't|doesn't} eat much fiber"),
        children=False,
    ),
    _condition(
        "Fungal infection", "weeks",
        "itching ring_rash peeling_skin discolored_patches cracked_toes",
        deny="fever hives swollen_glands",
        clues=("{I} {sweat|sweats} a lot at the gym", "{I} {use|uses} the communal showers at the pool",
               "it's worse in hot, humid weather"),
    ),
    _condition(
        "Hypertension", "months",
        "headache dizziness blurred_vision nosebleeds palpitations chest_pain short_breath tiredness",
        deny="fever cough rash",
        clues=("a machine at the pharmacy said {my} blood pressure was high",
               "high blood pressure runs in {my} family", "{I've} been under a lot of stress lately"),
        children=False,
    ),
    _condition(
        "Impetigo", "days",
        "sores crusts itching blisters spreading_sores swollen_glands",
        deny="fever sore_throat cough",
        clues=("it started around a scratch on {my} face", "it started near an insect bite"),
    ),
    _condition(
        "Jaundice", "weeks",
        "yellow_skin yellow_eyes dark_urine pale_stools itching tiredness stomach_pain loss_of_appetite"
        " nausea weight_loss",
        deny="cough rash chest_pain",
        clues=("there's a dull ache under {my} right ribs", "{I} {have|has} never had anything like this before"),
    ),
    _condition(
        "Malaria", "days",
        "fever chills sweats headache nausea vomiting body_aches tiredness diarrhea",
        deny="rash runny_nose sore_throat",
        clues=("{I} got back from a trip to West Africa two weeks ago",
               "{I} {get|gets} fevers that come in waves every couple of days",
               "{I} got lots of mosquito bites while travelling"),
    ),
    _condition(
        "Migraine", "months",
        "throbbing_headache light_sensitivity sound_sensitivity nausea vomiting aura dizziness",
        deny="fever neck_stiffness rash",
        clues=("the attacks come on when {I'm} stressed or {I} {skip|skips} meals",
               "bright screens seem to trigger it", "afterwards {I} {feel|feels} completely drained for a day"),
    ),
    _condition(
        "Pneumonia", "days",
        "cough fever phlegm short_breath pleuritic_pain chills sweats tiredness",
        deny="rash diarrhea joint_pain",
        clues=("it started after a cold that never cleared", "{I} can't lie flat without coughing"),
    ),
    _condition(
        "Psoriasis", "months",
        "scaly_plaques itching cracked_skin nail_changes scalp_flakes joint_pain",
        deny="fever blisters sores",
        clues=("it flares up when {I'm} stressed", "it runs in {my} family", "it gets worse in winter"),
        children=False,
    ),
    _condition(
        "Typhoid", "weeks",
        "fever stomach_pain headache tiredness loss_of_appetite constipation diarrhea cough",
        deny="runny_nose sneezing short_breath",
        clues=("{I} drank tap water while travelling", "{my} temperature has been creeping higher every day",
               "we ate a lot of street food on holiday"),
    ),
    _condition(
        "Varicose Veins", "months",
        "bulging_veins heavy_legs swollen_ankles itching leg_cramps leg_skin_changes",
        deny="fever chest_pain short_breath",
        clues=("{I} {stand|stands} all day at work", "it's worse after a long day on {my} feet",
               "putting {my} feet up helps a bit"),
        children=False,
    ),
    _condition(
        "allergy", "weeks",
        "sneezing runny_nose itchy_eyes watery_eyes blocked_nose hives itching cough",
        deny="fever body_aches chills",
        clues=("it's worse when {I'm} around cats", "it gets bad whenever the pollen count is high",
               "it flares up when {I} {dust|dusts} the house"),
    ),
    _condition(
        "diabetes", "months",
        "thirst frequent_urination tiredness weight_loss hunger blurred_vision slow_healing tingling_feet",
        deny="fever burning_urination cough",
        clues=("blood sugar problems run in {my} family", "{I} {keep|keeps} getting up at night to drink water"),
    ),
    _condition(
        "drug reaction", "days",
        "rash itching hives facial_swelling fever peeling_skin nausea",
        deny="cough sore_throat runny_nose",
        clues=("it started a few days after {I} began a new antibiotic", "{I} started taking new tablets last week",
               "the doctor put {me} on a new medicine recently"),
    ),
    _condition(
        "gastroesophageal reflux disease", "months",
        "heartburn acid_reflux trouble_swallowing cough hoarse_voice chest_pain bloating nausea",
        deny="fever weight_loss black_stools",
        clues=("it's worse after big meals or when {I} {lie|lies} down", "spicy food and coffee make it worse",
               "antacids help for a little while"),
        children=False,
    ),
    _condition(
        "peptic ulcer disease", "weeks",
        "upper_stomach_pain bloating burping nausea early_fullness loss_of_appetite vomiting black_stools weight_loss",
        deny="fever diarrhea cough",
        clues=("{I've} been taking a lot of ibuprofen for {my} back",
               "eating something settles {my} stomach for a while",
               "{I} often {wake|wakes} up at night with a burning stomach"),
        children=False,
    ),
    _condition(
        "urinary tract infection", "days",
        "burning_urination frequent_urination urgency cloudy_urine lower_belly_pain blood_in_urine fever back_pain",
        deny="cough diarrhea rash",
        clues=("{I've} had something like this before", "drinking more water hasn't helped"),
    ),
)

CONDITIONS: dict[str, Condition] = {c.label: c for c in _CONDITION_LIST}


# --------------------------------------------------------------------------------------------
# Who is writing: the patient ("I") most of the time, sometimes a parent or partner.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Patient:
    """The person a description is about. ``noun`` is empty when the writer is the patient."""

    noun: str = ""  # "my son"; "" for the writer
    subject: str = "I"  # he / she
    object: str = "me"  # him / her
    possessive: str = "my"  # his / her


_HE = dict(subject="he", object="him", possessive="his")
_SHE = dict(subject="she", object="her", possessive="her")
_ADULTS = tuple(_Patient(noun, **pronouns) for noun, pronouns in [
    ("my husband", _HE), ("my wife", _SHE), ("my mother", _SHE), ("my father", _HE),
    ("my partner", _HE), ("my partner", _SHE), ("my brother", _HE), ("my sister", _SHE),
])
_CHILDREN = tuple(_Patient(noun, **pronouns) for noun, pronouns in [
    ("my son", _HE), ("my daughter", _SHE), ("my little boy", _HE), ("my little girl", _SHE),
])

_TOKEN = re.compile(r"\{([^{}]+)\}")


class _Narrator:
    """Fills person tokens in, naming someone else in full the first time ("my son"), then "he"."""

    def __init__(self, patient: _Patient) -> None:
        self.patient = patient
        self.introduced = not patient.noun

    def render(self, template: str) -> str:
        return _TOKEN.sub(self._fill, template)

    def _fill(self, match: re.Match) -> str:
        token, p = match.group(1), self.patient
        if "|" in token:  # {keep|keeps}: the verb form for "I", then for "he"/"she"
            first, third = token.split("|")
            return first if not p.noun else third
        if not p.noun:  # the writer is the patient: {I} is "I", {my} is "my", ...
            return token
        if not self.introduced:
            self.introduced = True
            return {"I": p.noun, "me": p.noun, "my": p.noun + "'s", "I'm": p.noun + " is",
                    "I've": p.noun + " has", "who": p.noun}[token]
        return {"I": p.subject, "me": p.object, "my": p.possessive, "I'm": p.subject + "'s",
                "I've": p.subject + "'s", "who": p.noun}[token]


# --------------------------------------------------------------------------------------------
# The sentence patterns. <a>, <b>, <c> are symptom clauses; the other <slots> are timelines.
# --------------------------------------------------------------------------------------------

# How symptom clauses are joined into one sentence, by number of clauses.
_JOINS = {
    1: ("<a>",),
    2: ("<a>, and <b>", "<a> and <b>", "<a>, and I've also noticed that <b>", "<a>, and on top of that, <b>",
        "<a>, plus <b>", "<a>, and now <b>", "<a>, but what worries me most is that <b>", "<a>, and <b> as well"),
    3: ("<a>, <b>, and <c>", "<a>, <b> and <c>", "<a>, <b>, and on top of that, <c>", "<a> and <b>, and <c>",
        "<a>, <b>, and also <c>"),
}
# A second sentence of symptoms, when it holds a single clause.
_FOLLOW_ONS = ("Also, <a>", "<a> as well", "On top of that, <a>", "And <a>", "<a> too", "Plus, <a>",
               "I've also noticed that <a>")

# Openings that say how long, for clauses like "{I've} had ..." / "{I've} been ...".
_DURATION_OPENINGS = ("For <for>, ", "For <for> ", "Since <since>, ", "Over the <span>, ", "Lately ",
                      "Recently, ")
_DURATIVE = re.compile(r"^(\{I've\}|\{my\} [a-z ]+ (has|have)) (had|been) ")

_TIMESCALES = {
    "days": dict(
        onset="suddenly",
        for_=("two days", "three days", "a couple of days", "about four days", "five days", "the past few days",
              "nearly a week", "the last 48 hours"),
        since=("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "the weekend", "yesterday morning",
               "Sunday night"),
        ago=("two days ago", "three days ago", "a few days ago", "on Monday", "last Friday", "over the weekend",
             "yesterday", "about four days ago"),
        span=("past few days", "last couple of days", "past week"),
    ),
    "weeks": dict(
        onset="gradually",
        for_=("about a week", "ten days", "two weeks", "a couple of weeks", "almost three weeks", "about a month"),
        since=("last week", "the start of the month", "last Monday", "the beginning of last week"),
        ago=("a week ago", "about ten days ago", "two weeks ago", "a couple of weeks ago", "last week"),
        span=("past week", "last couple of weeks", "past few weeks"),
    ),
    "months": dict(
        onset="gradually",
        for_=("a few months", "about six months", "over a year", "the last couple of months", "most of this year",
              "about three months"),
        since=("last summer", "the spring", "Christmas", "the start of the year", "last autumn"),
        ago=("a few months ago", "last year", "about six months ago", "back in the spring", "a couple of months ago"),
        span=("past few months", "last year", "past couple of months"),
    ),
}

_TIMELINES = ("It started <ago>.", "This has been going on for <for>.", "It's been like this since <since>.",
              "It all began <ago>.", "I first noticed it <ago>.", "It came on <onset> <ago>.",
              "It started <ago> and has been getting worse.", "It all started with the <first> <ago>.")

_NEGATIONS = ("No <name>, though.", "Thankfully, no <name>.", "{I} {haven't|hasn't} had <any> <name>.")
_NEGATION_CLAUSES = ("<negation>.", "But <negation>.", "<negation>, as far as I can tell.")  # symptom's own

_SEVERITIES = ("It comes and goes.", "It's worse at night.", "It's usually worse in the mornings.",
               "Some days are worse than others.", "It's really getting {me} down.",
               "It's bad enough that {I} can't sleep properly.", "It's affecting {my} sleep.",
               "Over-the-counter medicine hasn't helped much.", "It's not severe, but it won't go away.",
               "It seems to be getting worse.", "It's pretty mild, but it's annoying.")

_OPENERS_SELF = ("Hi.", "Hello doctor.", "I'm not sure what's going on.", "I need some advice.",
                 "Something isn't right.", "I've been feeling unwell.")
_OPENERS_OTHER = ("I'm worried about {who}.", "This is about {who}.", "I'd like some advice about {who}.",
                  "{who} hasn't been well.", "I'm writing for {who}.")
_CLOSERS = ("Should I be worried?", "What could this be?", "Is this something serious?",
            "Do I need to see a doctor?", "Any idea what this could be?", "What should I do?")

# Details that have nothing to do with the illness (a classifier must learn to ignore them).
_DETAILS_WRITER = ("we just moved house", "we've had a lot going on at home lately",
                   "we just got back from visiting family", "my sister is getting married next month",
                   "we recently got a new sofa", "I've been busy with work")
_DETAILS_ADULT = ("{I} {work|works} night shifts", "{I'm} a teacher", "{I've} just started a new job",
                  "{I} {go|goes} running a few times a week", "{I'm} vegetarian", "{I} {don't|doesn't} smoke",
                  "{I} {work|works} from home most days", "{I'm} training for a half marathon",
                  "{I} {cycle|cycles} to work every day", "{I} recently took up swimming")
_DETAILS_CHILD = ("{I} just started at a new school", "{I'm} normally full of energy",
                  "{I} {love|loves} playing football", "{I} {go|goes} to nursery three days a week",
                  "{I} {have|has} swimming lessons on Saturdays")
_DETAIL_FRAMES = ("<d>.", "Not sure if it matters, but <d>.", "In case it's relevant, <d>.", "<d>, if that matters.")

# How often the optional parts appear.
_P_NEGATION, _P_TIMELINE, _P_SEVERITY, _P_CLUE, _P_DETAIL, _P_OPENER, _P_CLOSER = (
    0.35, 0.45, 0.25, 0.25, 0.2, 0.15, 0.15)
_MAX_SENTENCES = 4


def _fill(template: str, **slots: str) -> str:
    """Replaces ``<slot>`` placeholders (not the ``{person}`` tokens, which the narrator fills)."""
    for key, value in slots.items():
        template = template.replace(f"<{key}>", value)
    return template


def _capitalize(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def _pick_patient(rng: random.Random, condition: Condition) -> _Patient:
    roll = rng.random()
    if roll < 0.7:
        return _Patient()
    if condition.children and roll < 0.85:
        return rng.choice(_CHILDREN)
    return rng.choice(_ADULTS)


def _pick_symptoms(rng: random.Random, condition: Condition) -> list[Symptom]:
    """2-5 distinct symptoms, the first-listed (most characteristic) ones more often, in table order."""
    k = rng.randint(2, min(5, len(condition.symptoms)))
    indices = list(range(len(condition.symptoms)))
    weights = [1.0 / (1.0 + 0.5 * i) for i in indices]
    chosen = []
    for _ in range(k):
        j = rng.choices(range(len(indices)), weights=weights)[0]
        chosen.append(indices.pop(j))
        weights.pop(j)
    return [condition.symptoms[i] for i in sorted(chosen)]


def _split(rng: random.Random, n: int) -> list[int]:
    """How ``n`` clauses are spread over one or two sentences (at most 3 per sentence)."""
    if n == 1:
        return [1]
    if n <= 3 and rng.random() < 0.6:
        return [n]
    first = rng.randint(max(1, n - 3), min(3, n - 1))
    return [first, n - first]


def _symptom_sentences(rng: random.Random, clauses: list[str]) -> list[str]:
    """Joins the symptom clauses into one or two sentences (without the final full stop)."""
    sentences, start = [], 0
    for size in _split(rng, len(clauses)):
        group = clauses[start:start + size]
        if start > 0 and size == 1:
            pattern = rng.choice(_FOLLOW_ONS)
        elif size == 3 and "," in group[0] + group[1]:  # "a, b, and c" is unclear if a or b has a comma
            pattern = "<a>, and <b>, and <c>"
        else:
            pattern = rng.choice(_JOINS[size])
        sentences.append(_fill(pattern, **dict(zip("abc", group))))
        start += size
    return sentences


def _when(rng: random.Random, timescale: dict) -> dict[str, str]:
    return {"for": rng.choice(timescale["for_"]), "since": rng.choice(timescale["since"]),
            "ago": rng.choice(timescale["ago"]), "span": rng.choice(timescale["span"]),
            "onset": timescale["onset"]}


def _describe(rng: random.Random, condition: Condition) -> Description:
    """Writes one description of ``condition`` (1-4 sentences) and records what went into it."""
    patient = _pick_patient(rng, condition)
    symptoms = _pick_symptoms(rng, condition)
    clauses = [rng.choice(s.phrasings) for s in symptoms]
    timescale = _TIMESCALES[condition.course]
    body = _symptom_sentences(rng, clauses)

    # Optional sentences, each as (kind, template). If there are too many, some are dropped.
    extras: list[tuple[str, str]] = []
    denied = rng.choice(condition.deny) if rng.random() < _P_NEGATION else None
    if denied is not None:
        negation = rng.choice(denied.negations) if denied.negations else ""
        pattern = rng.choice(_NEGATIONS + _NEGATION_CLAUSES if negation else _NEGATIONS)
        any_ = "a" if denied.countable else "any"
        extras.append(("negation", _fill(pattern, name=denied.name, negation=negation, any=any_)))
    if _DURATIVE.match(clauses[0]) and rng.random() < 0.35:  # "For three days I've had ..."
        body[0] = _fill(rng.choice(_DURATION_OPENINGS), **_when(rng, timescale)) + body[0]
    elif rng.random() < _P_TIMELINE:  # one timeline only, or they might contradict each other
        timeline = _fill(rng.choice(_TIMELINES), first=symptoms[0].name, **_when(rng, timescale))
        extras.append(("timeline", timeline))
    if rng.random() < _P_SEVERITY:
        extras.append(("severity", rng.choice(_SEVERITIES)))
    if condition.clues and rng.random() < _P_CLUE:
        extras.append(("clue", rng.choice(condition.clues) + "."))
    if rng.random() < _P_DETAIL:
        pool = _DETAILS_WRITER + (_DETAILS_CHILD if patient in _CHILDREN else _DETAILS_ADULT)
        extras.append(("detail", _fill(rng.choice(_DETAIL_FRAMES), d=rng.choice(pool))))
    if rng.random() < _P_OPENER:
        extras.append(("opener", rng.choice(_OPENERS_OTHER if patient.noun else _OPENERS_SELF)))
    if rng.random() < _P_CLOSER:
        extras.append(("closer", rng.choice(_CLOSERS)))
    rng.shuffle(extras)
    # Someone else must be named ("my son") before "he" can refer to them: if the first clause
    # has no person token ("it hurts to swallow"), an opener must do the naming.
    if patient.noun and "{" not in clauses[0]:
        extras = [("opener", rng.choice(_OPENERS_OTHER))] + [e for e in extras if e[0] != "opener"]
    kinds = dict(extras[:_MAX_SENTENCES - len(body)])
    if "negation" not in kinds:
        denied = None

    # A short "..., but no fever" can ride on the last symptom sentence instead.
    if denied is not None and "but" not in body[-1] and rng.random() < 0.3:
        body[-1] += ", but no " + denied.name
        del kinds["negation"]

    order = ["opener", "body", "negation", "timeline", "clue", "severity", "detail", "closer"]
    if rng.random() < 0.3:  # sometimes the detail comes first: "I work night shifts. For three days ..."
        order.remove("detail")
        order.insert(1, "detail")
    sentences = []
    for kind in order:
        if kind == "body":
            sentences.extend(s + "." for s in body)
        elif kind in kinds:
            sentences.append(kinds[kind])
    narrator = _Narrator(patient)
    text = " ".join(_capitalize(narrator.render(s)) for s in sentences)
    return Description(condition.label, text, tuple(s.id for s in symptoms), denied.id if denied else None)


def _descriptions(seed: int) -> Iterator[Description]:
    """An endless stream of descriptions, balanced: every round of 24 covers each label once."""
    rng = random.Random(seed)
    labels = list(CONDITIONS)
    while True:
        rng.shuffle(labels)
        for label in labels:
            yield _describe(rng, CONDITIONS[label])


def generate_examples(seed: int = 0, n: int = 1000) -> list[tuple[str, str]]:
    """``n`` labelled ``(label, text)`` pairs; the label counts differ by at most one."""
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    stream = _descriptions(seed)
    return [(d.label, d.text) for d, _ in zip(stream, range(n))]


def generate_corpus(seed: int = 0, n_bytes: int = 2_000_000) -> str:
    """Raw training text: one description per line, stopping at the first line that reaches ``n_bytes``.

    The text is plain ASCII, so characters and bytes are the same thing, and it ends with a newline.
    """
    if n_bytes <= 0:
        raise ValueError(f"n_bytes must be positive, got {n_bytes}")
    lines, size = [], 0
    for description in _descriptions(seed):
        lines.append(description.text)
        size += len(description.text) + 1
        if size >= n_bytes:
            break
    return "\n".join(lines) + "\n"
