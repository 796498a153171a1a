"""A keyboard-wedge scanner for the browser tests.

A scanner types a code a few milliseconds a key and presses Enter. The page
(static/scan.js) tells a scanner from a person by the gaps between keys as the
browser stamps them, so the keys are sent with a scanner's time stamps
(Chromium's `Input.dispatchKeyEvent`): a loaded test machine that delivers
them late must not turn a scan into a person's typing. How far apart the
keys of a real scan arrive on a machine is measured by bench/scanner_keys.py.
"""

from __future__ import annotations

import time
from typing import Any

from playwright.async_api import Page

KEY_GAP_SECONDS = 0.005
# The operator's pause before the next code.
PAUSE_MS = 300
_ENTER = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"}


def _key(character: str) -> dict[str, Any]:
    if character.isalpha():
        code, virtual = f"Key{character.upper()}", ord(character.upper())
    elif character.isdigit():
        code, virtual = f"Digit{character}", ord(character)
    else:
        code, virtual = {"-": ("Minus", 189), ",": ("Comma", 188)}.get(character, ("", 0))
    return {"key": character, "code": code, "windowsVirtualKeyCode": virtual, "text": character}


async def type_code(page: Page, code: str, *, enter: bool = True) -> None:
    """`code`'s keys (then Enter) a scanner's gap apart by the browser's clock."""
    keys = [_key(character) for character in code] + [_ENTER] * enter
    # Stamped in the past: a key is never dispatched before the time it bears.
    start = time.time() - len(keys) * KEY_GAP_SECONDS
    session = await page.context.new_cdp_session(page)
    try:
        for index, key in enumerate(keys):
            stamp = start + index * KEY_GAP_SECONDS
            await session.send("Input.dispatchKeyEvent", {"type": "keyDown", "timestamp": stamp, **key})
            up = {name: value for name, value in key.items() if name != "text"}
            await session.send("Input.dispatchKeyEvent", {"type": "keyUp", "timestamp": stamp, **up})
    finally:
        await session.detach()


async def scan(page: Page, *codes: str) -> None:
    """Each code as a scanner types it, then the operator's pause."""
    for code in codes:
        await type_code(page, code)
        await page.wait_for_timeout(PAUSE_MS)
