"""The payloads of sections 12 and 13, generated: Autobahn sends slices of five files it ships
(a JSON file, a 512x512 grey bitmap, Goethe's Faust I from Project Gutenberg, an HTML file and
a PDF), which the suite cannot download. Each corpus here is data of the same kind, made from a
fixed seed, so every run sends the same bytes: JSON and HTML are text (str, with some non-ASCII
characters, sliced by characters as Autobahn slices its text files), the others bytes. Each is
about 256 KiB, the order of Autobahn's files, so that slices of 128 KiB still move through it.
"""
import functools
import json
import math
import random
import struct
import zlib

SIZE = 256 * 1024

WORDS_DE = ("und der die das ist nicht ich du wir sie ein eine mit auf für über unter nach "
            "Geist Welt Nacht Himmel Erde Herz Seele Stunde Mensch Gott Teufel Zeit Wissen "
            "Schüler Gelehrter Straße Stube Mädchen Bürger Glück Natur Flamme Traum Wort Tat "
            "groß klein schön dunkel hell alt jung tief hoch müde froh bitter süß ewig "
            "gehen sehen fühlen wissen streben suchen finden lieben hören sprechen möchte "
            "würde könnte wäre hätte dürfte Grüße Frühling Bäume Blüten Lämmer Öl Ähren").split()
WORDS_EN = ("the of and data value user order item price status account message server "
            "client session request response cache query result event stream window").split()
CITIES = ("Zürich", "München", "Kraków", "São Paulo", "Reykjavík", "Malmö", "Genève", "Köln",
          "Montréal", "Århus", "Łódź", "Düsseldorf")


@functools.lru_cache(maxsize=None)
def json_text():
    """12.1 and section 13: records as a web API returns them."""
    rng = random.Random(1201)
    records, size = [], 2
    while size < SIZE:
        record = {
            "id": rng.randrange(10 ** 9),
            "name": " ".join(rng.choice(WORDS_EN).capitalize() for _ in range(2)),
            "city": rng.choice(CITIES),
            "active": rng.random() < 0.5,
            "score": round(rng.uniform(0, 1000), 3),
            "tags": [rng.choice(WORDS_EN) for _ in range(rng.randrange(1, 5))],
            "created": f"2026-{rng.randrange(1, 13):02}-{rng.randrange(1, 29):02}T"
                       f"{rng.randrange(24):02}:{rng.randrange(60):02}:00Z",
            "note": " ".join(rng.choice(WORDS_DE) for _ in range(rng.randrange(3, 12))),
        }
        records.append(record)
        size += len(json.dumps(record, ensure_ascii=False)) + 2
    return json.dumps(records, ensure_ascii=False, indent=1)


@functools.lru_cache(maxsize=None)
def picture():
    """12.2: a 512x512 8-bit grey bitmap (BMP) of smooth shapes and sensor noise, a photo's
    statistics rather than a drawing's."""
    rng = random.Random(1202)
    width = height = 512
    palette = b"".join(bytes((g, g, g, 0)) for g in range(256))
    pixels = bytearray(width * height)
    for y in range(height):
        for x in range(width):
            v = (96 + 60 * math.sin(x / 37.0) * math.cos(y / 53.0) +
                 40 * math.sin((x + y) / 91.0) + rng.gauss(0, 6))
            pixels[y * width + x] = min(255, max(0, int(v)))
    offset = 14 + 40 + len(palette)
    header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 0, len(pixels), 2835, 2835,
                       256, 0)
    return header + info + palette + bytes(pixels)


@functools.lru_cache(maxsize=None)
def prose():
    """12.3: German prose in lines of verse, UTF-8 (Autobahn sends its Faust as binary
    messages, and so do these cases)."""
    rng = random.Random(1203)
    lines, size = [], 0
    while size < SIZE:
        words = [rng.choice(WORDS_DE) for _ in range(rng.randrange(4, 10))]
        line = " ".join(words).capitalize() + rng.choice((",", ".", "!", "?", ";", ""))
        if rng.random() < 0.08:
            line = "\n" + rng.choice(("FAUST", "MEPHISTOPHELES", "WAGNER", "GRETCHEN")) + \
                ":\n" + line
        lines.append(line)
        size += len(line.encode("utf-8")) + 1
    return "\n".join(lines).encode("utf-8")


@functools.lru_cache(maxsize=None)
def html_text():
    """12.4: an HTML page: nested elements, attributes, text in two languages."""
    rng = random.Random(1204)
    parts = ["<!DOCTYPE html>\n<html lang=\"de\">\n<head><meta charset=\"utf-8\">"
             "<title>Übersicht</title></head>\n<body>\n"]
    size = len(parts[0])
    while size < SIZE:
        cls = rng.choice(("row", "item", "card", "entry"))
        words = " ".join(rng.choice(WORDS_DE + WORDS_EN) for _ in range(rng.randrange(5, 25)))
        link = f"/{rng.choice(WORDS_EN)}/{rng.randrange(10000)}"
        block = (f"<div class=\"{cls}\" id=\"n{rng.randrange(10 ** 6)}\">\n"
                 f"  <h2>{rng.choice(CITIES)}</h2>\n  <p>{words}</p>\n"
                 f"  <a href=\"{link}\" title=\"{rng.choice(WORDS_EN)}\">mehr…</a>\n</div>\n")
        parts.append(block)
        size += len(block)
    parts.append("</body>\n</html>\n")
    return "".join(parts)


@functools.lru_cache(maxsize=None)
def pdf():
    """12.5: a PDF's mix: text objects and cross-references, and DEFLATE-compressed streams
    (as PDFs carry their fonts and images) that do not compress again."""
    rng = random.Random(1205)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    number = 1
    while len(out) < SIZE:
        if rng.random() < 0.5:
            text = " ".join(rng.choice(WORDS_EN + WORDS_DE) for _ in range(rng.randrange(20, 80)))
            body = f"BT /F1 {rng.randrange(8, 14)} Tf {rng.randrange(600)} " \
                   f"{rng.randrange(800)} Td ({text}) Tj ET".encode("utf-8")
        else:
            raw = bytes(rng.randrange(256) if rng.random() < 0.7 else 0
                        for _ in range(rng.randrange(500, 4000)))
            body = zlib.compress(raw, 9)
        out += (f"{number} 0 obj\n<< /Length {len(body)} /Filter /FlateDecode >>\nstream\n"
                .encode("ascii") + body + b"\nendstream\nendobj\n")
        number += 1
    out += b"xref\n0 %d\n" % number + b"".join(
        b"%010d 00000 n \n" % (i * 977) for i in range(number)) + b"trailer\n<< /Size %d >>\n" \
        b"%%%%EOF\n" % number
    return bytes(out)


# Section 12's payload kinds, in Autobahn's order: (id, description, generator, text?).
KINDS = (
    (1, "JSON-like text", json_text, True),
    (2, "picture-like binary (512x512 grey bitmap)", picture, False),
    (3, "German prose (binary messages)", prose, False),
    (4, "HTML text", html_text, True),
    (5, "PDF-like binary", pdf, False),
)


def messages(corpus, size):
    """Autobahn's slicing: consecutive slices of `size` characters (text) or bytes, going
    round the corpus; text is sent as UTF-8."""
    data = corpus()
    at = 0
    while True:
        end = (at + size) % len(data)
        piece = data[at:end] if end > at else data[at:] + data[:end]
        at = end
        yield piece.encode("utf-8") if isinstance(piece, str) else piece
