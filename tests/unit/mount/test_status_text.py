"""``portalfs status`` text: long lists are cut, odd snapshots still render."""

from __future__ import annotations

from mount.status_text import LIMIT, render, total_size


def test_total_size_counts_only_usable_sizes() -> None:
    entries = [{"size": 1000}, {"size": 24.0}, {"size": True}, {"size": "5"}, {}, {"size": None}]
    assert total_size(entries) == 1024
    assert total_size([]) == 0


def test_long_lists_show_the_first_uploads_and_the_latest_events() -> None:
    extra = 3
    pending = [{"path": f"p{i}", "size": 1024, "state": "pending"} for i in range(LIMIT + extra)]
    in_flight = [{"path": f"f{i}", "size": 10, "sent": 5} for i in range(LIMIT + extra)]
    conflicts = [{"path": f"c{i}", "conflict_path": f"c{i} (conflict)", "when": 0}
                 for i in range(LIMIT + extra)]
    errors = [{"message": f"e{i}", "when": 0} for i in range(LIMIT + extra)]
    text = render({"mountpoint": "/m", "uploads": {"pending": pending, "in_flight": in_flight},
                   "conflicts": conflicts, "errors": errors})
    lines = text.splitlines()
    assert f"Uploads: {LIMIT + extra} pending (23.0 KiB)" in lines
    assert lines.count(f"  … and {extra} more") == 2  # after the pending and the in-flight lists
    assert lines.count(f"  … {extra} earlier") == 2   # before the conflicts and the errors
    assert "p0" in text and f"p{LIMIT}" not in text
    assert f"f{LIMIT - 1}:" in text and f"f{LIMIT}:" not in text
    assert "c0 " not in text and f"c{LIMIT + extra - 1}  → c{LIMIT + extra - 1} (conflict)" in text
    assert not any(line.endswith("  e0") for line in lines) and lines[-1].endswith(f"e{LIMIT + extra - 1}")
    header = lines.index("Recent errors:")
    assert lines[header - 1] == ""


def test_an_empty_or_odd_snapshot_renders() -> None:
    assert render({}).splitlines()[2] == "Uploads: nothing pending"
    assert "Conflicts" not in render({"conflicts": "nonsense", "errors": 3})
    assert "Recent errors:" in render({"errors": ["boom"]})


def test_an_upload_begun_while_the_file_is_written_says_so() -> None:
    in_flight = [{"path": "video.mkv", "size": 4 << 20, "sent": 1 << 20, "early": True},
                 {"path": "done.bin", "size": 4 << 20, "sent": 1 << 20}]
    lines = render({"mountpoint": "/m", "uploads": {"pending": [], "in_flight": in_flight}}).splitlines()
    assert "  video.mkv: 1.0 MiB of 4.0 MiB (25%) so far, still being written" in lines
    assert "  done.bin: 1.0 MiB of 4.0 MiB (25%)" in lines
