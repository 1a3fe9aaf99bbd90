"""Settings: what :class:`~hidesync_events.settings.Settings` refuses, and how it says so.

A refused setting is a :class:`ConfigurationError` naming the setting and its
``HIDESYNC_EVENTS_*`` variable, whichever mode it is read in.
"""

from __future__ import annotations

import pytest

from hidesync_events import ConfigurationError, configure


class TestBrokerUrl:
    @pytest.mark.parametrize(
        "broker_url",
        [
            "redis://127.0.0.1:6379/0",
            "REDIS://127.0.0.1:6379/0",
            "rediss://127.0.0.1:6380/0",
            "amqp://guest:guest@127.0.0.1:5672//",
            "pyamqp://127.0.0.1//",
            "sentinel://127.0.0.1:26379",
            "sqla+sqlite:///broker.db",
            "memory://",
            "rabbit.internal:5672",
        ],
    )
    def test_a_url_kombu_can_open_is_accepted(self, broker_url: str) -> None:
        assert broker_url == configure(broker_url=broker_url).broker_url

    def test_an_unknown_transport_is_refused_by_name(self) -> None:
        """A scheme kombu has no transport for is named, with the variable to fix."""
        with pytest.raises(ConfigurationError) as refused:
            configure(mode="eager", broker_url="http://x")

        assert (
            "broker_url (HIDESYNC_EVENTS_BROKER_URL): 'http' is not a broker kombu "
            "knows; use a redis://, amqp:// or other kombu transport URL "
            "(got 'http://x')"
        ) in str(refused.value)

    @pytest.mark.parametrize(
        "broker_url", ["redis//127.0.0.1", "redis:/127.0.0.1", "rabbit internal"]
    )
    def test_a_url_without_a_scheme_must_be_a_host_name(self, broker_url: str) -> None:
        """Without "://" kombu takes the URL for an AMQP host name, which a typo such
        as a missing colon or slash cannot be."""
        with pytest.raises(ConfigurationError) as refused:
            configure(broker_url=broker_url)

        assert "broker_url (HIDESYNC_EVENTS_BROKER_URL): not a broker URL" in str(
            refused.value
        )
        assert "state_url" not in str(refused.value)

    def test_a_refused_url_keeps_its_password_hidden(self) -> None:
        with pytest.raises(ConfigurationError) as refused:
            configure(broker_url="http://leatherhand:s3cret@127.0.0.1/")

        assert "s3cret" not in str(refused.value)
        assert "leatherhand" in str(refused.value)

    def test_the_variable_is_read_too(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Undone before the test's teardown reads the settings again.
        with monkeypatch.context() as patch:
            patch.setenv("HIDESYNC_EVENTS_BROKER_URL", "http://x")

            with pytest.raises(ConfigurationError, match="HIDESYNC_EVENTS_BROKER_URL"):
                configure()


class TestStateUrl:
    @pytest.mark.parametrize(
        "state_url",
        [
            "redis://127.0.0.1:6379/1",
            "REDIS://127.0.0.1:6379/1",
            "rediss://127.0.0.1:6380/1",
            "unix:///run/redis.sock",
            "memory://",
        ],
    )
    def test_a_url_redis_py_can_open_is_accepted(self, state_url: str) -> None:
        assert state_url == configure(state_url=state_url).resolved_state_url

    @pytest.mark.parametrize("mode", ["eager", "celery"])
    def test_another_scheme_is_refused_by_name(self, mode: str) -> None:
        """The state store is Redis: another URL is refused with its variable, not
        redis-py's ValueError once a command opens it."""
        with pytest.raises(ConfigurationError) as refused:
            configure(mode=mode, state_url="amqp://x")

        assert (
            "state_url (HIDESYNC_EVENTS_STATE_URL): the state store is Redis; use a "
            "redis://, rediss:// or unix:// URL (got 'amqp://x')"
        ) in str(refused.value)

    def test_empty_is_unset(self) -> None:
        """An empty variable leaves the state store to follow a Redis broker."""
        settings = configure(broker_url="redis://127.0.0.1:6390/3", state_url="")

        assert "redis://127.0.0.1:6390/3" == settings.resolved_state_url

    def test_a_broken_broker_is_named_rather_than_the_state_store(self) -> None:
        """With no state URL the broker's own problem is told, not a missing
        state_url it would have been the source of."""
        with pytest.raises(ConfigurationError) as refused:
            configure(mode="celery", broker_url="http://x", state_url=None)

        assert "HIDESYNC_EVENTS_BROKER_URL" in str(refused.value)
        assert "state_url" not in str(refused.value)


class TestPrefixes:
    @pytest.mark.parametrize(
        ("setting", "example"),
        [("key_prefix", "hidesync:events"), ("queue_prefix", "hidesync.events")],
    )
    @pytest.mark.parametrize("prefix", ["", " ", "hidesync events", "shop "])
    def test_an_empty_prefix_or_one_with_spaces_is_refused(
        self, setting: str, example: str, prefix: str
    ) -> None:
        """Every Redis key or queue name starts with its prefix: it must be a name."""
        with pytest.raises(ConfigurationError) as refused:
            configure(**{setting: prefix})

        assert (
            f"{setting} (HIDESYNC_EVENTS_{setting.upper()}): must be a name without "
            f"spaces, such as {example!r} (got {prefix!r})"
        ) in str(refused.value)

    def test_a_prefix_of_its_own_is_accepted(self) -> None:
        settings = configure(key_prefix="shop:events", queue_prefix="shop.events")

        assert ("shop:events", "shop.events") == (
            settings.key_prefix,
            settings.queue_prefix,
        )


class TestUnknownVariables:
    def test_a_misspelt_variable_is_named_with_the_setting_it_may_mean(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A variable of ours that no setting reads would be ignored silently: it is
        named once, with the closest setting's variable."""
        monkeypatch.setenv("HIDESYNC_EVENTS_BROKR_URL", "redis://127.0.0.1:1/0")
        monkeypatch.setenv("HIDESYNC_EVENTS_LOG_LEVEL", "info")

        with caplog.at_level("WARNING", logger="hidesync.events.settings"):
            configure()
            configure()

        assert [
            "HIDESYNC_EVENTS_BROKR_URL is not a hidesync-events setting and is "
            "ignored (did you mean HIDESYNC_EVENTS_BROKER_URL?)"
        ] == [r.getMessage() for r in caplog.records]
