"""Child process for the 1,000,000-device memory test (tests/test_render_memory.py).

``python render_stream_child.py measure AUDIENCE TEMPLATE`` runs itself again in ``work``
mode and prints ``<devices> <seconds> <child peak RSS in KiB>``: measuring from a fresh
parent keeps other tests' subprocesses out of RUSAGE_CHILDREN.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time


def work(audience: str, template: str) -> int:
    from pushctl.audience import AudienceReader
    from pushctl.message import Template, build_apns, build_fcm
    from pushctl.model import Platform

    tpl = Template.load(template)
    count = 0
    for device in AudienceReader(audience):
        variant = tpl.choose_variant(device.token, "memtest")
        note = tpl.render(device, variant=variant)
        if device.platform is Platform.IOS:
            build_apns(note, device.token, topic="com.example.pushctl", where=device.where)
        else:
            build_fcm(note, device.token, platform=device.platform, where=device.where)
        count += 1
    return count


def main() -> None:
    mode, audience, template = sys.argv[1:4]
    if mode == "work":
        sys.stdout.write(f"{work(audience, template)}\n")
        return
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, __file__, "work", audience, template], capture_output=True, text=True
    )
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        sys.exit(proc.returncode)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    sys.stdout.write(f"{proc.stdout.strip()} {elapsed:.1f} {peak_kib}\n")


if __name__ == "__main__":
    main()
