"""The workshop's fixed data: who works there, what it owns, what it makes.

People (the manager, the front desk and the makers), the tools and how they are
serviced, the materials and the customer and project records, the workflow templates
with their steps and resources, and the rates and reasons that shape an execution. None
of it is random: the rest of the package draws the day from it.
"""

from __future__ import annotations

from dataclasses import dataclass

# -- people ----------------------------------------------------------------------------

USERS: dict[int, str] = {
    1: "Maya Okafor",
    2: "Tom Lindqvist",
    3: "Ana Ruiz",
    4: "Ben Carter",
    5: "Priya Nair",
    6: "Jonas Weber",
    7: "Grace Kim",
    8: "Luca Bianchi",
    9: "Sofia Haddad",
    10: "Owen Murphy",
    11: "Hana Sato",
    12: "Eli Brooks",
}
MANAGER = 1
FRONT_DESK = 2
MAKERS = tuple(range(3, 13))


# -- tools -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    tool_id: int
    name: str
    category: str


POWER_TOOLS = "Power Tools"
HAND_TOOLS = "Hand Tools"
LEATHER_TOOLS = "Leather Tools"

TABLE_SAW = Tool(1, "Table Saw", POWER_TOOLS)
BANDSAW = Tool(2, "Bandsaw", POWER_TOOLS)
ROUTER = Tool(3, "Router", POWER_TOOLS)
ORBITAL_SANDER = Tool(4, "Random Orbit Sander", POWER_TOOLS)
DRILL_PRESS = Tool(5, "Drill Press", POWER_TOOLS)
DOVETAIL_SAW = Tool(6, "Dovetail Saw", HAND_TOOLS)
CHISEL_SET = Tool(7, "Chisel Set", HAND_TOOLS)
BLOCK_PLANE = Tool(8, "Block Plane", HAND_TOOLS)
MARKING_GAUGE = Tool(9, "Marking Gauge", HAND_TOOLS)
STITCHING_AWL = Tool(10, "Stitching Awl", LEATHER_TOOLS)
EDGE_BEVELER = Tool(11, "Edge Beveler", LEATHER_TOOLS)
SKIVING_KNIFE = Tool(12, "Skiving Knife", LEATHER_TOOLS)
STRAP_CUTTER = Tool(13, "Strap Cutter", LEATHER_TOOLS)
BURNISHER = Tool(14, "Burnisher", LEATHER_TOOLS)
PRICKING_IRONS = Tool(15, "Pricking Irons", LEATHER_TOOLS)
ROUND_KNIFE = Tool(16, "Round Knife", LEATHER_TOOLS)
SPOKESHAVE = Tool(17, "Spokeshave", HAND_TOOLS)

NEW_TOOLS = (ROUND_KNIFE, SPOKESHAVE)
ALL_TOOLS = (
    TABLE_SAW,
    BANDSAW,
    ROUTER,
    ORBITAL_SANDER,
    DRILL_PRESS,
    DOVETAIL_SAW,
    CHISEL_SET,
    BLOCK_PLANE,
    MARKING_GAUGE,
    STITCHING_AWL,
    EDGE_BEVELER,
    SKIVING_KNIFE,
    STRAP_CUTTER,
    BURNISHER,
    PRICKING_IRONS,
    *NEW_TOOLS,
)

MAINTENANCE_KINDS: dict[str, tuple[str, ...]] = {
    POWER_TOOLS: ("Blade replacement", "Fence calibration", "Dust port cleaning"),
    HAND_TOOLS: ("Sharpening", "Handle refit"),
    LEATHER_TOOLS: ("Sharpening", "Stropping", "Tip polish"),
}
TOOLS_SERVICED_PER_DAY = 4
RETURN_ISSUES = ("Needs sharpening", "Handle loose", "Chipped edge", "Out of alignment")
RETURN_ISSUE_RATE = 0.08
FIRST_CHECKOUT_ID = 7001
FIRST_MAINTENANCE_ID = 501


# -- materials and records -------------------------------------------------------------


@dataclass(frozen=True)
class Material:
    material_id: int
    name: str
    unit: str


LEATHER_4OZ = Material(1, "Leather - 4oz", "sq ft")
LEATHER_8OZ = Material(2, "Leather - 8oz", "sq ft")
WAXED_THREAD = Material(3, "Waxed Thread", "m")
EDGE_PAINT = Material(4, "Edge Paint", "ml")
BRASS_BUCKLE = Material(5, "Brass Buckle", "pcs")
BRASS_RIVETS = Material(6, "Brass Rivets", "pcs")
WALNUT_BOARD = Material(7, "Walnut Board", "board ft")
MAPLE_BOARD = Material(8, "Maple Board", "board ft")
WOOD_GLUE = Material(9, "Wood Glue", "ml")
MINERAL_OIL = Material(10, "Food-Safe Mineral Oil", "ml")
BEESWAX = Material(11, "Beeswax Finish", "g")
MATERIALS = (
    LEATHER_4OZ,
    LEATHER_8OZ,
    WAXED_THREAD,
    EDGE_PAINT,
    BRASS_BUCKLE,
    BRASS_RIVETS,
    WALNUT_BOARD,
    MAPLE_BOARD,
    WOOD_GLUE,
    MINERAL_OIL,
    BEESWAX,
)
DELIVERED_MATERIAL = Material(12, "Leather - 6oz", "sq ft")

ACTIVE_PROJECT_IDS = tuple(range(301, 336))
FIRST_NEW_CUSTOMER_ID = 231
FIRST_NEW_PROJECT_ID = 341
# Records retired today; nothing else in the day refers to them.
RETIRED_RECORDS = (("Customer", 219), ("Project", 338), ("Material", 14))


# -- workflows -------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    resource_type: str
    resource_id: int
    name: str
    quantity: float


def material(item: Material, quantity: float) -> Resource:
    """Return ``quantity`` (in the material's unit) of ``item`` as a resource."""
    return Resource("material", item.material_id, item.name, quantity)


def tool(item: Tool) -> Resource:
    """Return ``item`` as a resource: one of it, for the whole execution."""
    return Resource("tool", item.tool_id, item.name, 1.0)


@dataclass(frozen=True)
class Step:
    step_id: int
    name: str
    step_type: str
    minutes: float
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Workflow:
    workflow_id: int
    name: str
    steps: tuple[Step, ...] = ()
    resources: tuple[Resource, ...] = ()
    outcome_ids: tuple[int, ...] = ()
    popularity: int = 0


LEATHER_WALLET = Workflow(
    101,
    "Leather Wallet",
    steps=(
        Step(1011, "Cut Panels", "cutting", 8.0),
        Step(1012, "Stitch Card Pockets", "stitching", 15.0),
        Step(
            1013,
            "Choose Edge Finish",
            "decision",
            1.0,
            ("Burnish with beeswax", "Two coats of edge paint"),
        ),
        Step(1014, "Finish Edges", "finishing", 10.0),
    ),
    resources=(material(LEATHER_4OZ, 1.5), material(EDGE_PAINT, 15.0), tool(BURNISHER)),
    outcome_ids=(11, 12),
    popularity=5,
)
HAND_STITCHED_BELT = Workflow(
    102,
    "Belt with Hand Stitching",
    steps=(
        Step(1021, "Cut Strap", "cutting", 6.0),
        Step(
            1022,
            "Choose Buckle",
            "decision",
            1.0,
            ("Solid brass roller buckle", "Nickel heel bar buckle"),
        ),
        Step(1023, "Stitch Buckle Fold", "stitching", 12.0),
        Step(1024, "Bevel and Burnish Edges", "finishing", 9.0),
    ),
    resources=(
        material(LEATHER_8OZ, 1.0),
        material(BRASS_BUCKLE, 1.0),
        tool(STRAP_CUTTER),
    ),
    outcome_ids=(21, 22),
    popularity=3,
)
WALNUT_CUTTING_BOARD = Workflow(
    103,
    "Walnut Cutting Board",
    steps=(
        Step(1031, "Rip Strips", "cutting", 10.0),
        Step(1032, "Glue Up", "assembly", 12.0),
        Step(1033, "Flatten and Oil", "finishing", 16.0),
        Step(1034, "Final Inspection", "inspection", 3.0),
    ),
    resources=(material(WALNUT_BOARD, 3.5), tool(TABLE_SAW)),
    outcome_ids=(31,),
    popularity=3,
)
DOVETAIL_BOX = Workflow(
    104,
    "Dovetail Box",
    steps=(
        Step(1041, "Mill Stock", "cutting", 12.0),
        Step(1042, "Cut Dovetails", "cutting", 18.0),
        Step(1043, "Choose Lid", "decision", 1.0, ("Sliding lid", "Hinged lid")),
        Step(1044, "Glue Up and Wax", "assembly", 14.0),
    ),
    resources=(
        material(MAPLE_BOARD, 2.0),
        material(WOOD_GLUE, 25.0),
        tool(DOVETAIL_SAW),
    ),
    outcome_ids=(41, 42),
    popularity=2,
)
CARD_HOLDER = Workflow(
    105,
    "Card Holder",
    steps=(
        Step(1051, "Cut Pieces", "cutting", 4.0),
        Step(1052, "Stitch Sides", "stitching", 8.0),
        Step(1053, "Burnish Edges", "finishing", 5.0),
    ),
    resources=(material(LEATHER_4OZ, 0.5), material(WAXED_THREAD, 1.5)),
    outcome_ids=(51,),
    popularity=7,
)
SADDLE_BAG = Workflow(
    106,
    "Saddle Bag",
    steps=(
        Step(1061, "Cut Panels", "cutting", 14.0),
        Step(1062, "Stitch Gusset", "stitching", 20.0),
        Step(
            1063, "Choose Closure", "decision", 1.0, ("Buckle straps", "Magnetic snap")
        ),
        Step(1064, "Set Hardware", "assembly", 8.0),
        Step(1065, "Final Inspection", "inspection", 4.0),
    ),
    resources=(
        material(LEATHER_8OZ, 4.0),
        material(BRASS_RIVETS, 8.0),
        material(WAXED_THREAD, 8.0),
        tool(STITCHING_AWL),
    ),
    outcome_ids=(61, 62),
    popularity=1,
)
TEMPLATES = (
    LEATHER_WALLET,
    HAND_STITCHED_BELT,
    WALNUT_CUTTING_BOARD,
    DOVETAIL_BOX,
    CARD_HOLDER,
    SADDLE_BAG,
)

# Workflows the manager works on today without anyone running them yet.
KNIFE_SHEATH = Workflow(107, "Knife Sheath")
WATCH_STRAP = Workflow(108, "Watch Strap")
LEATHER_APRON = Workflow(109, "Leather Apron")
WALLET_DRAFT = Workflow(110, "Leather Wallet (copy)")


# -- executions ------------------------------------------------------------------------

FIRST_EXECUTION_ID = 5001
EXECUTIONS_PER_DAY = (250, 260)
CANCEL_RATE = 0.06
PAUSE_RATE = 0.14
PAUSE_REASONS = (
    "Material shortage",
    "Waiting for glue to cure",
    "Lunch break",
    "Tool needed on another job",
)
CANCEL_REASONS = (
    "Customer cancelled the order",
    "Flaw found in the hide",
    "Material out of stock",
)
MATERIAL_REASONS = frozenset({"Material shortage", "Material out of stock"})
MANUAL_NAVIGATION_RATE = 0.1
MILESTONES = (
    (25.0, "Quarter done"),
    (50.0, "Halfway"),
    (75.0, "Three quarters done"),
    (100.0, "All steps done"),
)
