"""What to do with each kind of e-waste: the advice shown next to a prediction.

General guidance for the ten classes of the shared dataset (EU WEEE categories and common
practice); local rules vary, so every entry tells users to check with their municipality.
Labels without an entry get the general e-waste advice.
"""

from __future__ import annotations

GENERAL = {
    "category": "Electronic waste",
    "bin": "E-waste collection point",
    "steps": [
        "Do not put it in household waste or recycling bins.",
        "Take it to an e-waste collection point or a retailer take-back scheme.",
    ],
    "hazards": [],
}

# Keyboards and mice are disposed of the same way.
INPUT_DEVICE = {
    "category": "Small IT equipment",
    "bin": "E-waste collection point",
    "steps": ["Remove batteries if it is wireless.", "Bring it to an e-waste collection point."],
    "hazards": [],
}

GUIDANCE: dict[str, dict] = {
    "Battery": {
        "category": "Batteries",
        "bin": "Battery collection box",
        "steps": [
            "Tape the terminals of lithium and larger batteries to prevent short circuits.",
            "Drop it in a battery collection box (supermarkets, electronics stores).",
            "Swollen or damaged batteries: keep them apart and bring them to a collection point.",
        ],
        "hazards": ["fire risk (lithium)", "heavy metals"],
    },
    "Keyboard": INPUT_DEVICE,
    "Microwave": {
        "category": "Small household appliance",
        "bin": "E-waste collection point",
        "steps": [
            "Do not open it: the capacitor can hold a dangerous charge.",
            "Bring it to an e-waste collection point or use a retailer take-back.",
        ],
        "hazards": ["high-voltage capacitor"],
    },
    "Mobile": {
        "category": "Small IT and telecom equipment",
        "bin": "E-waste collection point or phone take-back",
        "steps": [
            "Back up and erase your data, remove the SIM and memory cards.",
            "Bring it to a take-back scheme or an e-waste collection point.",
        ],
        "hazards": ["lithium battery"],
    },
    "Mouse": INPUT_DEVICE,
    "PCB": {
        "category": "Circuit boards",
        "bin": "E-waste collection point",
        "steps": [
            "Keep boards dry and unbroken; do not burn or grind them.",
            "Bring them to an e-waste collection point.",
        ],
        "hazards": ["lead solder", "brominated flame retardants"],
    },
    "Player": {
        "category": "Consumer electronics",
        "bin": "E-waste collection point",
        "steps": ["Remove batteries and discs.", "Bring it to an e-waste collection point."],
        "hazards": [],
    },
    "Printer": {
        "category": "IT equipment",
        "bin": "E-waste collection point",
        "steps": [
            "Remove ink or toner cartridges and return them to a cartridge recycling scheme.",
            "Bring the printer to an e-waste collection point.",
        ],
        "hazards": ["toner dust"],
    },
    "Television": {
        "category": "Screens and monitors",
        "bin": "E-waste collection point (large items)",
        "steps": [
            "Keep the screen intact; old CRT sets contain lead glass.",
            "Use the retailer take-back when buying a new one, or a collection point.",
        ],
        "hazards": ["lead glass (CRT)", "mercury (older LCD backlights)"],
    },
    "Washing Machine": {
        "category": "Large household appliance",
        "bin": "Bulky e-waste collection",
        "steps": [
            "Book a bulky-waste pickup or use the retailer take-back on delivery of a new one.",
            "Do not dump it: metals and motors are recovered.",
        ],
        "hazards": [],
    },
}


def guidance_for(label: str) -> dict:
    entry = GUIDANCE.get(label, GENERAL)
    return {**entry, "note": "Rules differ by place: check your municipality's guidance."}
