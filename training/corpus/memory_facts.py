"""Hand-written fact templates for the memory evaluation set: how people state a fact, and ask for it later.

Each fact has ways to state it (``{v}`` is the value), ways to ask for it days later
(worded differently: every question has a word the statement lacks), and passing
mentions of its topic that do not state it (so that a topic word alone finds the wrong
message). The values are drawn per channel, so that two channels never share one.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

WORDS = (
    "bluefish", "tangerine", "copper", "maple", "falcon", "pebble", "saffron", "walrus", "juniper", "cobalt",
    "lantern", "meadow", "quartz", "riverbend", "sparrow", "thistle", "velvet", "willow", "zephyr", "marigold",
)  # fmt: skip
SURNAMES = (
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Takahashi",
    "Brennan",
    "Castellano",
    "Novak",
    "Haddad",
    "Ferreira",
    "Kowalski",
)
RESTAURANTS = ("Trattoria Lucca", "Golden Lotus", "Casa Miguel", "The Copper Pot", "Sakura Ramen", "Le Petit Zinc",
               "Bombay Garden", "Taverna Nikos", "Smokehouse 21", "Green Fig")  # fmt: skip
HOTELS = ("Hotel Astoria", "Seaview Lodge", "Pinecrest Inn", "Hotel Marlowe", "Harbour House", "The Alder")
STREETS = ("Linden Street", "Harbor Road", "Elm Avenue", "Kestrel Lane", "Mill Road", "Orchard Way", "Queens Parade")
MONTHS = ("March", "April", "May", "June", "July", "September", "October", "November")
ALLERGENS = ("peanuts", "shellfish", "sesame", "kiwi", "penicillin", "walnuts", "mustard")
PETS = ("Biscuit", "Pretzel", "Mochi", "Waffles", "Juniper", "Nugget", "Pickles", "Tofu", "Ziggy")
BOOKS = ("The Overstory", "Piranesi", "Project Hail Mary", "The Dispossessed", "Station Eleven", "Klara and the Sun")


def _pw(r: random.Random) -> str:
    return f"{r.choice(WORDS)}{r.randint(10, 99)}"


def _code(r: random.Random) -> str:
    return str(r.randint(1000, 9999))


def _date(r: random.Random) -> str:
    return f"{r.choice(MONTHS)} {r.randint(3, 28)}"


def _time(r: random.Random) -> str:
    return f"{r.choice((7, 8, 9, 10, 11))}:{r.choice(('05', '15', '20', '40', '45', '50'))}"


def _phone(r: random.Random) -> str:
    return f"0{r.randint(150, 179)} {r.randint(100, 999)} {r.randint(1000, 9999)}"


@dataclass(frozen=True)
class Fact:
    """One kind of fact: its value, how it is stated, asked for and mentioned in passing."""

    key: str
    value: Callable[[random.Random], str]
    states: tuple[str, ...]
    asks: tuple[str, ...]
    mentions: tuple[str, ...]


FACTS: tuple[Fact, ...] = (
    Fact(
        "wifi",
        _pw,
        (
            "the wifi password is {v}",
            "new wifi pw: {v}",
            "btw they changed the wifi password to {v}",
            "for anyone asking, wifi password = {v}",
        ),
        (
            "what's the password for the office wifi?",
            "which password does the wifi use now?",
            "can you give me the wifi login password?",
            "what was the new wifi password?",
        ),
        ("wifi is super slow today", "is the wifi down for anyone else?", "the wifi in the kitchen keeps dropping"),
    ),
    Fact(
        "door",
        _code,
        (
            "door code for the building is {v}",
            "the front door code changed, it's {v} now",
            "code for the main entrance: {v}",
        ),
        (
            "what's the code to get into the building?",
            "how do I open the front door, what's the code?",
            "what was the entrance door code again?",
        ),
        ("someone left the front door open again", "the building door was jammed this morning"),
    ),
    Fact(
        "restaurant",
        lambda r: r.choice(RESTAURANTS),
        (
            "I booked a table at {v} for friday",
            "dinner on friday is at {v}, table for six",
            "reservation done: {v}, friday 8pm",
        ),
        (
            "which restaurant did we book for friday dinner?",
            "where are we having dinner on friday, which place?",
            "what's the name of the restaurant for friday's reservation?",
        ),
        ("I'm starving, what's for dinner", "that restaurant near the station closed down"),
    ),
    Fact(
        "deadline",
        _date,
        ("the grant report deadline is {v}", "heads up, report is due {v}", "they moved the report deadline to {v}"),
        (
            "when is the grant report due?",
            "what's the due date for the report?",
            "by which date do we have to submit the report?",
        ),
        ("I haven't even started the report lol", "deadlines everywhere this month"),
    ),
    Fact(
        "plumber",
        _phone,
        (
            "the plumber's number is {v}",
            "plumber who fixed our sink: {v}, very good",
            "here's the plumber contact, {v}",
        ),
        (
            "does anyone have the plumber's phone number?",
            "what's the number of that plumber we used?",
            "can I get the contact number for the plumber?",
        ),
        ("the sink is leaking again", "need to find a plumber at some point"),
    ),
    Fact(
        "flight",
        lambda r: f"{r.choice(('LH', 'BA', 'KL', 'AF', 'IB'))} {r.randint(100, 9899)}",
        ("my flight is {v}, lands around 6", "booked flight {v} for the trip", "I'm on flight {v} on sunday"),
        (
            "which flight number is {a} on?",
            "what flight did {a} book for the trip?",
            "what's {a}'s flight number again?",
        ),
        ("flights are so expensive this month", "airport security took forever last time"),
    ),
    Fact(
        "hotel",
        lambda r: r.choice(HOTELS),
        ("we're staying at the {v}", "booked three nights at the {v}", "hotel is sorted: {v}"),
        (
            "which hotel are we staying at for the trip?",
            "what's the name of the hotel we booked?",
            "where did we book the rooms, which hotel?",
        ),
        ("the last hotel had awful pillows", "should we look at hotels or an airbnb"),
    ),
    Fact(
        "party",
        lambda r: f"{r.randint(3, 98)} {r.choice(STREETS)}",
        ("the party is at {v}", "housewarming address: {v}, come after 7", "party's at my new place, {v}"),
        (
            "what's the address for the housewarming party?",
            "where is the party on saturday, which street?",
            "can someone send me the party address?",
        ),
        ("what should I bring to the party", "I'm so tired after last weekend's party"),
    ),
    Fact(
        "server",
        lambda r: f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(2, 254)}",
        ("staging server is at {v}", "moved staging to {v}", "new staging box: {v}"),
        (
            "what's the IP address of the staging server?",
            "which IP is staging on now?",
            "where does staging live, what's its address?",
        ),
        ("staging is down again", "who broke staging this time"),
    ),
    Fact(
        "budget",
        lambda r: f"{r.randint(3, 19)}00 euros",
        ("budget for the offsite is {v}", "we got {v} approved for the offsite", "offsite budget confirmed: {v}"),
        (
            "how much money do we have for the offsite?",
            "what's the total offsite budget?",
            "how big is the budget approved for the offsite?",
        ),
        ("the offsite agenda is still empty", "should the offsite be in the mountains"),
    ),
    Fact(
        "puppy",
        lambda r: r.choice(PETS),
        ("we named the puppy {v}", "meet {v}, our new puppy!", "the puppy's name is {v}, she's tiny"),
        ("what did {a} call the new puppy?", "what's the name of {a}'s puppy?", "how is {a}'s puppy called?"),
        ("puppies are so much work", "the neighbours got a puppy too"),
    ),
    Fact(
        "dentist",
        _time,
        (
            "dentist appointment on thursday at {v}",
            "my dentist is at {v} thursday, so I'll be late",
            "booked the dentist for {v} on thursday",
        ),
        (
            "what time is {a}'s dentist appointment?",
            "when is {a} at the dentist on thursday, what time?",
            "at what time does {a} see the dentist?",
        ),
        ("I hate going to the dentist", "my tooth has been hurting all week"),
    ),
    Fact(
        "parking",
        lambda r: f"level {r.randint(2, 6)}, spot {r.choice('ABCDEFG')}{r.randint(10, 60)}",
        ("I parked on {v}", "car is on {v} of the garage", "parked the van at {v}"),
        (
            "where in the garage did {a} park the car?",
            "which parking spot did {a} leave the car in?",
            "what level and spot is the car parked at?",
        ),
        ("parking downtown is a nightmare", "the garage lift is broken again"),
    ),
    Fact(
        "release",
        lambda r: f"version {r.randint(2, 9)}.{r.randint(0, 12)}.{r.randint(0, 9)}",
        ("we're shipping {v} on monday", "monday's release will be {v}", "tagging {v} for the monday release"),
        (
            "which version goes out in the monday release?",
            "what's the version number we ship on monday?",
            "what release version did we agree for monday?",
        ),
        ("release notes still need work", "CI is flaky before every release"),
    ),
    Fact(
        "tracking",
        lambda r: f"JD{r.randint(10**9, 10**10 - 1)}",
        (
            "tracking number for the chairs: {v}",
            "the chairs shipped, tracking is {v}",
            "here's the chair delivery tracking code {v}",
        ),
        (
            "what's the tracking number of the chair delivery?",
            "how can I track the chairs, what number?",
            "does anyone have the tracking code for the office chairs?",
        ),
        ("still no chairs, we're sitting on boxes", "the delivery guy called the wrong number"),
    ),
    Fact(
        "birthday",
        _date,
        ("Maria's birthday is {v}", "don't forget, Maria turns 30 on {v}", "Maria's birthday party is on {v}"),
        (
            "when is Maria's birthday?",
            "on what date is Maria's birthday this year?",
            "which day does Maria celebrate her birthday?",
        ),
        ("what do we get Maria as a present", "I always forget birthdays"),
    ),
    Fact(
        "train",
        lambda r: f"23:{r.choice(('05', '12', '18', '27', '34', '42'))}",
        ("last train home leaves at {v}", "heads up the last train back is {v}", "last train from central: {v}"),
        (
            "when does the last train leave tonight?",
            "what time is the final train home?",
            "until what time do trains run back home tonight?",
        ),
        ("trains were cancelled again yesterday", "the train was packed this morning"),
    ),
    Fact(
        "vet",
        lambda r: f"Dr. {r.choice(SURNAMES)}",
        (
            "the vet we saw was {v}, really nice",
            "our vet is {v} at the clinic on the corner",
            "{v} is the vet who treated the cat",
        ),
        (
            "what was the name of the vet who treated the cat?",
            "who's the vet at the corner clinic?",
            "which vet did we see last time, what's the name?",
        ),
        ("the cat hates the carrier", "vet bills are insane"),
    ),
    Fact(
        "allergy",
        lambda r: r.choice(ALLERGENS),
        (
            "fyi Tom is allergic to {v}",
            "careful with the food, Tom can't have {v}, allergy",
            "Tom's allergy is {v}, pretty serious",
        ),
        ("what is Tom allergic to?", "which food allergy does Tom have?", "what can't Tom eat because of his allergy?"),
        ("Tom is bringing dessert", "is the food vegetarian"),
    ),
    Fact(
        "locker",
        lambda r: f"{r.randint(10, 39)}-{r.randint(10, 39)}-{r.randint(10, 39)}",
        ("locker combination is {v}", "gym locker combo: {v}", "the combination for the shared locker is {v}"),
        (
            "what's the combination for the gym locker?",
            "how do I open the shared locker, what's the combo?",
            "what was the locker combination?",
        ),
        ("someone took my towel from the locker room", "gym was packed today"),
    ),
    Fact(
        "book",
        lambda r: r.choice(BOOKS),
        ("book club pick for next month is {v}", "we're reading {v} for book club", "next book club book: {v}"),
        (
            "which book are we reading for book club?",
            "what's the next book club pick?",
            "what title did the book club choose?",
        ),
        ("I didn't finish last month's book", "book club is on tuesday this time"),
    ),
    Fact(
        "rental",
        lambda r: f"RC-{r.randint(100000, 999999)}",
        (
            "car rental confirmation is {v}",
            "rental car booked, confirmation {v}",
            "the rental confirmation number: {v}",
        ),
        (
            "what's the confirmation number for the rental car?",
            "does anyone have the car rental booking number?",
            "which confirmation code do we need for the rental car pickup?",
        ),
        ("the rental place closes early on sundays", "should we rent a bigger car"),
    ),
    Fact(
        "landlord",
        lambda r: f"{r.choice(SURNAMES).lower()}.rentals@mailbox.org",
        ("landlord's email is {v}", "you can reach the landlord at {v}", "email the landlord: {v}"),
        (
            "what's the landlord's email address?",
            "how do I contact the landlord, which email?",
            "where do I send the email to reach our landlord?",
        ),
        ("the landlord still hasn't fixed the heating", "rent went up again"),
    ),
    Fact(
        "seats",
        lambda r: f"row {r.choice('FGHJKLM')}, seats {r.randint(4, 20)}-{r.randint(21, 30)}",
        ("our concert seats are {v}", "got the tickets! {v}", "concert tickets: {v}"),
        (
            "where are our seats for the concert?",
            "which row did we get concert tickets in?",
            "what seats are on the concert tickets?",
        ),
        ("the concert starts at 8 I think", "I need new headphones before the concert"),
    ),
    Fact(
        "branch",
        lambda r: f"fix/{r.choice(WORDS)}-{r.randint(100, 999)}",
        ("the fix is on branch {v}", "pushed the patch to {v}", "review {v} when you can, it has the fix"),
        (
            "which git branch has the login fix?",
            "what branch should I review for the fix?",
            "where did the patch get pushed, which branch?",
        ),
        ("main is broken again", "merge conflicts all day"),
    ),
    Fact(
        "meeting",
        lambda r: f"room {r.randint(1, 5)}{r.choice('ABCD')}",
        ("standup moved to {v}", "from today standup is in {v}", "we have {v} for standup now"),
        (
            "where is the standup held now, which room?",
            "what meeting room do we use for standup?",
            "which room did standup move to?",
        ),
        ("standup ran long again", "can we skip standup on friday"),
    ),
)
