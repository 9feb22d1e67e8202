from registry.audit.context import actor_system
from registry.audit.services import audit_record

TEST_ACTOR = actor_system("tests")


def record(type: str = "test.event", **fields):
    return audit_record(type=type, actor=fields.pop("actor", TEST_ACTOR), **fields)
