"""Code 128 barcodes as inline SVG, for the printable code sheets (the defect
catalogue's and the badges'). python-barcode draws them; the markup it writes
is reduced to what a page under the app's CSP can show: no XML declaration or
doctype, no comment, and colours as `fill` attributes instead of `style`
attributes (which `style-src 'self'` would drop)."""

from __future__ import annotations

import io
import xml.dom.minidom

from barcode import Code128
from barcode.writer import SVGWriter
from markupsafe import Markup

# Bars 0.4 mm a module and 12 mm tall, with no text (the sheet prints the code
# and name beneath in HTML) and the quiet zone Code 128 needs on either side.
OPTIONS = {"module_width": 0.4, "module_height": 12.0, "quiet_zone": 4.0, "write_text": False,
           "background": None}


def code128_svg(code: str) -> Markup:
    """The `<svg>` element of `code` as Code 128. Only ever give it a code
    already validated: the markup is marked safe for the templates."""
    writer = SVGWriter()
    writer.with_doctype = False
    buffer = io.BytesIO()
    Code128(code, writer=writer).write(buffer, options=OPTIONS)
    svg = xml.dom.minidom.parseString(buffer.getvalue()).documentElement
    for node in list(svg.childNodes):
        if node.nodeType == node.COMMENT_NODE:
            svg.removeChild(node)
    for rect in svg.getElementsByTagName("rect"):
        rect.setAttribute("fill", rect.getAttribute("style").removeprefix("fill:").rstrip(";"))
        rect.removeAttribute("style")
    svg.setAttribute("role", "img")
    svg.setAttribute("aria-label", code)
    # Safe: every character is python-barcode's, or the validated code escaped by minidom.
    return Markup(svg.toxml())
