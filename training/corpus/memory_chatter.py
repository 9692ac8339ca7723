"""Hand-written small talk for the memory evaluation set: what a group says between the facts."""

from __future__ import annotations

import random

FOODS = ("pizza", "ramen", "tacos", "curry", "sushi", "falafel", "pho", "dumplings", "burgers", "lasagna")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SHOWS = ("the new detective series", "that baking show", "the documentary about octopuses", "the space drama",
         "the anime everyone talks about", "the football highlights")  # fmt: skip
GAMES = ("chess", "catan", "mario kart", "the new zelda", "poker", "codenames")
PLACES = ("the park", "the lake", "the market", "the climbing gym", "the old town", "the beach", "the museum")
THINGS = ("umbrella", "charger", "headphones", "keys", "water bottle", "notebook", "jacket")
TIMES = ("10", "11", "noon", "2", "half past 3", "5", "7")

LINES = (
    "morning all",
    "good morning!",
    "anyone awake?",
    "ugh mondays",
    "happy friday everyone",
    "who wants {food} for lunch?",
    "I could go for some {food} tbh",
    "{food} again? we had that yesterday",
    "the {food} place downstairs is closed today",
    "anyone tried the new {food} spot?",
    "did anyone watch {show}?",
    "I started {show} last night, no spoilers pls",
    "{show} was so good",
    "game night on {day}? I'm bringing {game}",
    "I keep losing at {game}",
    "rematch at {game} soon",
    "going to {place} on {day} if anyone wants to join",
    "{place} was packed this weekend",
    "lovely weather for {place} today",
    "it's pouring, so much for {place}",
    "has anyone seen my {thing}?",
    "I left my {thing} at the office again",
    "found a {thing}, whose is it?",
    "meeting at {time}?",
    "can we push it to {time}",
    "I'm free after {time}",
    "running 10 min late sorry",
    "traffic is awful today",
    "the bus didn't show up again",
    "my cat knocked my coffee over",
    "so tired today",
    "need more coffee",
    "who finished the milk",
    "the printer is jammed again",
    "I'm working from home today",
    "heading out, see you tomorrow",
    "back from lunch",
    "did you see the email from HR?",
    "that meeting could have been an email",
    "my laptop is updating, again",
    "who's around next week?",
    "I'm off on {day}",
    "happy birthday to my little brother today",
    "what's everyone doing this weekend?",
    "I'm just going to sleep all weekend",
    "planning to repaint the kitchen",
    "trying a new recipe tonight, wish me luck",
    "my plants are dying and I don't know why",
    "just finished a 10k run",
    "my knee hurts after yesterday's run",
    "started learning guitar, my fingers hurt",
    "listening to the new album on repeat",
    "anyone want my old bike?",
    "the neighbours are drilling again",
    "the heating is off in the office",
    "it's freezing in here",
    "who turned the AC up so high",
    "I'll bring snacks on {day}",
    "can someone water the plants while I'm away",
    "lunch at {time}?",
    "the elevator is out of order",
    "is the coffee machine fixed yet?",
    "new hoodies arrived, they're great",
    "I need a vacation",
    "only two more days until the weekend",
    "long week",
    "what a day",
    "did you see that sunset yesterday",
    "so much rain this week",
    "I think I'm getting a cold",
    "does anyone have a spare {thing}?",
    "my {thing} just broke",
    "ordered a new {thing} online",
    "shall we do {food} on {day}?",
    "I vote {food}",
    "anything but {food} please",
    "I'll be at {place} around {time}",
    "who's coming to {place}?",
    "count me in for {place}",
)
REACTIONS = (
    "lol",
    "haha",
    "same",
    "+1",
    "nice",
    "true",
    "yes!",
    "omg",
    "agreed",
    "sounds good",
    "no way",
    "ok",
    "👍",
    "😂",
    "sure",
    "maybe",
    "nope",
    "ha, classic",
    "fair",
    "good point",
    "yep",
    "thanks!",
    "cool",
    "I'm in",
    "not me",
    "me too",
    "wait really?",
    "oh no",
    "love it",
    "same here honestly",
)
THANKS = ("thanks!", "perfect, thanks", "saved, thank you", "great, noted", "got it", "thx")


def chatter(rng: random.Random) -> str:
    """One line of small talk (a third of the time a short reaction)."""
    if rng.random() < 0.33:
        return rng.choice(REACTIONS)
    return rng.choice(LINES).format(
        food=rng.choice(FOODS), day=rng.choice(DAYS), show=rng.choice(SHOWS), game=rng.choice(GAMES),
        place=rng.choice(PLACES), thing=rng.choice(THINGS), time=rng.choice(TIMES),
    )  # fmt: skip
