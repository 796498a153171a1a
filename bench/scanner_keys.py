"""Scanner keys: how far apart Chromium sees the keys of a code typed at
scanner speed on this machine, against the rule `static/scan.js` uses to tell
a scanner from a person when the focus is outside the form (the middle gap
between a code's keys, Enter included, at most SCANNER_KEY_GAP_MS; a pause
over KEY_PAUSE_MS starts a new code).

    .venv/bin/python bench/scanner_keys.py                 # 200 codes
    .venv/bin/python bench/scanner_keys.py --codes 500 --delay 5

The codes of a scan are typed, in turn, into a blank page (the focus on its
body, as after a click on the table) with Playwright's per-key delay, like the
browser tests; a person is typed at --human-delay. Prints the gaps between keys and how many codes the
rule takes for a scan: all of the scanner's should be, none of the person's.
No server, no database; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
from pathlib import Path

from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

PAGE = """<body><script>
  window.codes = [];
  let gaps = [], last = null;
  document.addEventListener("keydown", (event) => {
    if (last !== null) gaps.push(event.timeStamp - last);
    last = event.timeStamp;
    if (event.key === "Enter") { window.codes.push(gaps); gaps = []; last = null; }
  });
</script></body>"""
CODES = ("OP07", "CP00012345-0001", "OC12", "OC13", "000")  # one scan, in turn


def scan_js_constant(name: str) -> float:
    source = (ROOT / "static" / "scan.js").read_text()
    found = re.search(name + r" = (\d+);", source)
    assert found, f"{name} not found in static/scan.js"
    return float(found.group(1))


def middle_gap(gaps: list[float]) -> float:
    return sorted(gaps)[(len(gaps) - 1) // 2]


async def type_codes(page: object, count: int, delay: float) -> list[list[float]]:
    await page.evaluate("window.codes = []")
    for index in range(count):
        await page.keyboard.type(CODES[index % len(CODES)], delay=delay)
        await page.keyboard.press("Enter")
    return await page.evaluate("window.codes")


def report(name: str, codes: list[list[float]]) -> None:
    bound, pause = scan_js_constant("SCANNER_KEY_GAP_MS"), scan_js_constant("KEY_PAUSE_MS")
    gaps = sorted(gap for code in codes for gap in code)
    taken = sum(middle_gap(code) <= bound and max(code) <= pause for code in codes)
    print(f"{name}: {len(codes)} codes; gap ms median {statistics.median(gaps):.1f}, "
          f"p99 {gaps[int(len(gaps) * 0.99) - 1]:.1f}, max {gaps[-1]:.1f}, min {gaps[0]:.1f}; "
          f"codes with a gap over {bound:.0f} ms: {sum(max(code) > bound for code in codes)}; "
          f"taken for a scan: {taken}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codes", type=int, default=200)
    parser.add_argument("--delay", type=float, default=5.0, help="ms per key, as the tests type")
    parser.add_argument("--human-delay", type=float, default=150.0)
    parser.add_argument("--human-codes", type=int, default=5)
    args = parser.parse_args()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page()
        await page.set_content(PAGE)
        report(f"scanner at {args.delay:g} ms/key", await type_codes(page, args.codes, args.delay))
        report(f"person at {args.human_delay:g} ms/key",
               await type_codes(page, args.human_codes, args.human_delay))
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
