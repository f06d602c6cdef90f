"""`pushctl broadcast` and `pushctl channels` on the emulator: one request reaches exactly the devices
subscribed to the topic, condition or channel; journaled as a one-send run shown by `runs`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.emulator import SAMPLE_APNS_CHANNEL, Emulator

REPO = Path(__file__).resolve().parent.parent
NEWS = str(REPO / "samples" / "templates" / "breaking-news.yaml")
SCORE = str(REPO / "samples" / "templates" / "live-score.yaml")
# The sample audience's FCM tokens that follow topic "news" (data/broadcast-samples.toml).
_SAMPLES = (REPO / "samples" / "audience.csv").read_text().splitlines()
ANDROID = {
    name: next(line.split(",")[0] for line in _SAMPLES if f",{label}," in line)
    for name, label in (("benoit", "Benoît"), ("greta", "Greta"), ("priya", "Priya"))
}
IOS_FOLLOWERS = {
    "a4c123b1612dd272d1371c17149d439536b3216fdaeeb975729fae923d5a4fd1",
    "ac2f86702824c1c099724caf4941d4072014b3ce107f80e222f828767efc2f91",
}


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _cli(config: Path, journal: Path, *args: str) -> tuple[int, list[dict[str, object]], str]:
    code, out, err = _invoke(
        "--config", str(config), "--profile", "emulator", "-o", "json", *args, "--journal", str(journal)
    )
    return code, [json.loads(line) for line in out.splitlines()], err


def test_a_topic_and_a_condition_reach_exactly_their_subscribers_with_one_request(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite3"
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        code, objs, err = _cli(config, journal, "broadcast", NEWS, "--fcm-topic", "news")
        assert code == 0, err
        assert emu.fcm.stats["200"] == 1
        assert {d.token for d in emu.inbox.all()} == set(ANDROID.values())
        first = objs[0]
        assert first["token"] == "topic:news" and first["outcome"] == "delivered"
        message_id = str(first["provider_id"])
        assert message_id.startswith("projects/pushctl-emulator/messages/")
        assert {d.message_id for d in emu.inbox.all()} == {message_id}
        assert emu.inbox.all()[0].payload["notification"]["title"] == "Breaking: Markets rally as rates fall"
        # Running it again: the journal says it was sent, nothing goes out.
        code, objs, err = _cli(config, journal, "broadcast", NEWS, "--fcm-topic", "news")
        assert code == 0 and emu.fcm.stats["200"] == 1 and "already sent" in err
        emu.inbox.clear()
        code, objs, err = _cli(
            config, journal, "broadcast", NEWS, "--fcm-condition", "'news' in topics && 'sport' in topics"
        )
        assert code == 0, err
        assert [d.token for d in emu.inbox.all()] == [ANDROID["greta"]]
        assert emu.fcm.stats["200"] == 2
    code, out, _ = _invoke("-o", "json", "runs", "list", "--journal", str(journal))
    runs = [json.loads(line) for line in out.splitlines()]
    assert len(runs) == 2 and all(r["total"] == 1 for r in runs)


def test_channels_are_managed_and_a_broadcast_reaches_the_channel_subscribers(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite3"
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        base = ("--config", str(config), "--profile", "emulator", "-o", "json")
        code, out, err = _invoke(*base, "channels", "create", "--storage-policy", "1")
        assert code == 0, err
        channel = json.loads(out)["channel_id"]
        code, out, err = _invoke(*base, "channels", "list")
        assert {json.loads(line)["channel_id"] for line in out.splitlines()} == {channel, SAMPLE_APNS_CHANNEL}
        code, out, err = _invoke(*base, "channels", "show", channel)
        assert json.loads(out)["message-storage-policy"] == 1
        followers = sorted(IOS_FOLLOWERS)[:1]
        code, out, err = _invoke(
            "emulator", "join", *followers, "--apns-channel", channel, "--state-dir", str(tmp_path / "emu")
        )
        assert code == 0, err
        code, objs, err = _cli(config, journal, "broadcast", SCORE, "--apns-channel", channel)
        assert code == 0, err
        assert emu.broadcast.stats["broadcast 200"] == 1
        received = emu.inbox.all()
        assert [d.token for d in received] == followers
        aps = received[0].payload["aps"]
        assert aps["event"] == "update" and aps["content-state"]["homeScore"] == "2"
        assert received[0].headers["apns-channel-id"] == channel
        assert objs[0]["token"] == f"channel:{channel}" and objs[0]["provider_id"]
        code, out, err = _invoke(*base, "channels", "delete", channel)
        assert code == 0, err
        code, out, err = _invoke(*base, "channels", "show", channel)
        assert code == 2 and "no channel" in err


def test_the_readme_broadcast_on_a_fresh_emulator(tmp_path: Path) -> None:
    code, _out, err = _invoke(
        "-o",
        "json",
        "broadcast",
        SCORE,
        "--apns-channel",
        SAMPLE_APNS_CHANNEL,
        "--emulator",
        "--journal",
        str(tmp_path / "j"),
    )
    assert code == 0, err
    assert "emulator: delivered to 2 device(s)" in err
    code, _out, err = _invoke("broadcast", NEWS, "--apns-channel", "x", "--fcm-topic", "news", "--emulator")
    assert code == 2 and "exactly one of" in err
