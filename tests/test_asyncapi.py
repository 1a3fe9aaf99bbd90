"""``hidesync-events events --asyncapi PATH``: an AsyncAPI 3.0.0 document of the queues
and events, checked against the rules of the specification that need no network.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from hidesync_events import (
    CATALOGUE,
    __version__,
    configure,
    known_categories,
    queue_name,
    registered_event_types,
)
from hidesync_events.cli import main
from hidesync_events.codec import _HEADER_FIELDS

TOP_LEVEL = {
    "asyncapi",
    "id",
    "info",
    "servers",
    "defaultContentType",
    "channels",
    "operations",
    "components",
}
COMPONENT_KINDS = {
    "schemas",
    "servers",
    "channels",
    "operations",
    "messages",
    "securitySchemes",
    "serverVariables",
    "parameters",
    "correlationIds",
    "replies",
    "replyAddresses",
    "externalDocs",
    "tags",
    "operationTraits",
    "messageTraits",
    "serverBindings",
    "channelBindings",
    "operationBindings",
    "messageBindings",
}
#: The specification's pattern for the keys of components, channels and operations.
KEY = re.compile(r"^[a-zA-Z0-9\.\-_]+$")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write(path: Path) -> str:
    result = run("events", "--asyncapi", str(path))
    assert 0 == result.exit_code, result.output
    return path.read_text()


@pytest.fixture
def document(tmp_path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(write(tmp_path / "asyncapi.json"))
    return loaded


def refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` value anywhere under ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(document: dict[str, Any], ref: str) -> Any:
    """Follow a local JSON Pointer, and the references it lands on; KeyError if absent."""
    assert ref.startswith("#/"), f"{ref} is not a reference within the document"
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    if isinstance(node, dict) and set(node) == {"$ref"}:
        return resolve(document, node["$ref"])
    return node


class TestSpecificationRules:
    def test_required_top_level_fields(self, document: dict[str, Any]) -> None:
        """asyncapi is 3.0.0, info has title and version, and no unknown field."""
        assert "3.0.0" == document["asyncapi"]
        assert ("hidesync-events", __version__) == (
            document["info"]["title"],
            document["info"]["version"],
        )
        assert set(document) <= TOP_LEVEL
        assert set(document["components"]) <= COMPONENT_KINDS

    def test_every_reference_resolves_within_the_document(
        self, document: dict[str, Any]
    ) -> None:
        """Every $ref is a local pointer to something that exists."""
        found = list(refs(document))

        unresolved = []
        for ref in found:
            try:
                resolve(document, ref)
            except (KeyError, IndexError, TypeError):
                unresolved.append(ref)

        assert [] == unresolved
        assert found

    def test_keys_follow_the_pattern(self, document: dict[str, Any]) -> None:
        """Channel, operation and component keys match ^[a-zA-Z0-9.\\-_]+$."""
        keys = [*document["channels"], *document["operations"]]
        for kind in document["components"].values():
            keys += list(kind)

        assert [] == [key for key in keys if not KEY.match(key)]

    def test_channel_messages_are_components(self, document: dict[str, Any]) -> None:
        """Each channel's messages refer to messages defined under components."""
        messages = document["components"]["messages"]
        for channel in document["channels"].values():
            for key, message in channel["messages"].items():
                assert f"#/components/messages/{key}" == message["$ref"]
                assert key in messages

    def test_operations_use_their_channel_and_its_messages(
        self, document: dict[str, Any]
    ) -> None:
        """An operation sends or receives on an existing channel, and its messages
        are messages of that channel.
        """
        for operation in document["operations"].values():
            assert operation["action"] in ("send", "receive")
            channel_ref = operation["channel"]["$ref"]
            channel_id = channel_ref.removeprefix("#/channels/")
            assert channel_id in document["channels"]
            for message in operation["messages"]:
                prefix, _, key = message["$ref"].rpartition("/")
                assert f"{channel_ref}/messages" == prefix
                assert key in document["channels"][channel_id]["messages"]

    def test_every_channel_has_a_sender_and_a_receiver(
        self, document: dict[str, Any]
    ) -> None:
        """Publishers send and workers receive on every channel."""
        actions = {
            (operation["channel"]["$ref"], operation["action"])
            for operation in document["operations"].values()
        }

        assert {
            (f"#/channels/{channel}", action)
            for channel in document["channels"]
            for action in ("send", "receive")
        } == actions

    def test_servers_have_host_and_protocol(self, document: dict[str, Any]) -> None:
        """Each server names its host and protocol."""
        for server in document["servers"].values():
            assert server["host"]
            assert server["protocol"]


class TestContent:
    def test_one_channel_per_category_queue(self, document: dict[str, Any]) -> None:
        """Channels are the category queues, addressed by queue name."""
        assert {c: queue_name(c) for c in known_categories()} == {
            channel_id: channel["address"]
            for channel_id, channel in document["channels"].items()
        }

    def test_one_message_per_registered_event_type(
        self, document: dict[str, Any]
    ) -> None:
        """Each registered event type is one message named by its wire name, in the
        channel of its category.
        """
        messages = document["components"]["messages"]

        assert sorted(registered_event_types()) == sorted(
            message["name"] for message in messages.values()
        )
        for cls in CATALOGUE:
            meta = cls.__event_meta__
            assert meta.name in document["channels"][meta.category]["messages"]

    def test_a_payload_is_the_envelope_around_the_event_schema(
        self, document: dict[str, Any]
    ) -> None:
        """A message's payload is the envelope schema: the header fields, with type and
        category fixed, and under payload the event model's own JSON Schema.
        """
        template = "#/components/schemas/{model}"
        for cls in CATALOGUE:
            meta = cls.__event_meta__
            message = document["components"]["messages"][meta.name]
            envelope = resolve(document, message["payload"]["$ref"])

            model_schema = cls.model_json_schema(ref_template=template)
            model_schema.pop("$defs", None)
            assert model_schema == resolve(
                document, envelope["properties"]["payload"]["$ref"]
            )
            assert sorted(_HEADER_FIELDS) == sorted(envelope["required"])
            assert (meta.name, meta.category) == (
                envelope["properties"]["type"]["const"],
                envelope["properties"]["category"]["const"],
            )

    def test_the_server_is_the_broker_without_its_password(
        self, tmp_path: Path
    ) -> None:
        """The server is the configured broker: host and port, protocol, database;
        neither the user nor the password appear anywhere.
        """
        configure(broker_url="redis://leatherhand:s3cret@10.0.0.5:6380/2")

        text = write(tmp_path / "asyncapi.json")

        [server] = json.loads(text)["servers"].values()
        assert ("10.0.0.5:6380", "redis", "/2") == (
            server["host"],
            server["protocol"],
            server["pathname"],
        )
        assert "s3cret" not in text
        assert "leatherhand" not in text

    def test_an_amqp_broker_is_described_as_amqp(self, tmp_path: Path) -> None:
        """A RabbitMQ broker URL gives protocol amqp."""
        configure(broker_url="amqp://guest:guest@rabbit:5672//")

        [server] = json.loads(write(tmp_path / "asyncapi.json"))["servers"].values()

        assert ("rabbit:5672", "amqp") == (server["host"], server["protocol"])


class TestFormats:
    def test_a_yaml_path_gets_yaml(
        self, tmp_path: Path, document: dict[str, Any]
    ) -> None:
        """A .yaml path gets the same document as YAML."""
        text = write(tmp_path / "asyncapi.yaml")

        assert document == yaml.safe_load(text)

    def test_yaml_without_pyyaml_is_a_clear_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without PyYAML a .yml path fails (exit 1), says what to install, and
        writes nothing.
        """
        monkeypatch.setitem(sys.modules, "yaml", None)
        path = tmp_path / "asyncapi.yml"

        result = CliRunner().invoke(main, ["events", "--asyncapi", str(path)])

        assert 1 == result.exit_code
        assert "PyYAML" in result.output
        assert not path.exists()

    def test_a_dash_writes_json_to_standard_output(
        self, document: dict[str, Any]
    ) -> None:
        """--asyncapi - prints the JSON document."""
        assert document == json.loads(run("events", "--asyncapi", "-").stdout)

    def test_asyncapi_does_not_combine_with_json(self, tmp_path: Path) -> None:
        """--asyncapi with --json is a usage error, exit code 2."""
        result = CliRunner().invoke(
            main, ["events", "--json", "--asyncapi", str(tmp_path / "a.json")]
        )

        assert 2 == result.exit_code
