#!/usr/bin/python3
"""Writes docs/benchmarks.md and its charts from what benchmarks/run.sh measured.

    report.py --results DIR --doc FILE --template FILE

DIR holds results.jsonl (one line per wsload run: round, scenario, server, result), meta.json
(the run's settings and load average at start), commands.txt, and micro.json (Google Benchmark's
JSON output), all written by run.sh. The page gets medians with min-max over the rounds, ratios
to the TCP ceiling and to Beast, the machine, and PNG charts drawn by gnuplot into a folder
named after the page (docs/benchmarks/ for docs/benchmarks.md). Standard library only.
"""
import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess

# (key in results.jsonl, name on the page, bar colour); the order of every table and chart.
SERVERS = [
    ("tcp", "TCP ceiling", "#999999"),
    ("duplex", "duplex", "#228833"),
    ("duplex_held", "duplex, hold_read_buffer", "#117733"),
    ("duplex_nctx", "duplex, server_no_context_takeover", "#44aa99"),
    ("duplex2", "duplex, 2 threads", "#66bb55"),
    ("beast", "Boost.Beast", "#4477aa"),
    ("websocketpp", "websocketpp", "#aa3377"),
    ("node", "Node ws", "#ccbb44"),
]
SERVER_NAMES = {key: name for key, name, _ in SERVERS}

BROADCAST_SCENARIOS = [
    ("broadcast", "{subscribers} subscribers, 1 publisher, 1 message in flight",
     "{subscribers}, 1 × 1"),
    ("broadcast-inflight-few", "{few_subscribers} subscribers, 4 publishers × 8 in flight",
     "{few_subscribers}, 4 × 8"),
    ("broadcast-inflight", "{subscribers} subscribers, 4 publishers × 8 in flight",
     "{subscribers}, 4 × 8"),
]

ECHO_SCENARIOS = [
    ("echo-small", "100 connections, 20-byte messages, 1 in flight", "20 B, 1 in flight"),
    ("echo-small-pipelined", "100 connections, 20-byte messages, 16 in flight per connection",
     "20 B, 16 in flight"),
    ("echo-16k", "100 connections, 16 KiB messages, 1 in flight", "16 KiB, 1 in flight"),
]


# ---- numbers ------------------------------------------------------------------------------------

def compact(value):
    """81.2k, 1.02M: short enough for a table cell, three significant digits."""
    if value is None:
        return "–"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            scaled = value / scale
            return f"{scaled:.3g}{suffix}" if scaled < 100 else f"{scaled:.0f}{suffix}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def ratio(value, reference):
    if value is None or not reference:
        return "–"
    return f"{value / reference:.2f}×"


def spread(values):
    return f"{compact(min(values))}–{compact(max(values))}" if values else "–"


class series:
    """One server's runs of one scenario."""

    def __init__(self, runs):
        self.runs = runs

    def values(self, key):
        out = []
        for run in self.runs:
            value = run
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, (int, float)) and value >= 0:
                out.append(float(value))
        return out

    def median(self, key):
        values = self.values(key)
        return statistics.median(values) if values else None

    def share(self, cpu_key):
        """Median busy share of one core, from CPU seconds over the measured seconds."""
        shares = [run[cpu_key] / run["seconds"] for run in self.runs
                  if run.get(cpu_key, -1) >= 0 and run.get("seconds")]
        return f"{100 * statistics.median(shares):.0f} %" if shares else "–"

    def share_generator(self):
        shares = self.values("generator_cpu_share")
        return f"{100 * statistics.median(shares):.0f} %" if shares else "–"


def summary_line(run):
    """One wsload result as run.sh prints it after each run: the rate, the rate per second of
    server CPU, how busy each side was, and any broadcast violations."""
    if "bytes_per_connection" in run:
        return f"{bytes_text(run['bytes_per_connection'])} per connection"
    rate = next((key for key in ("messages_per_s", "deliveries_per_s", "handshakes_per_s")
                 if key in run), None)
    if rate is None:
        return "?"
    per_cpu = run.get(f"{rate.removesuffix('_per_s')}_per_server_cpu_s")
    seconds = run.get("seconds") or 0
    server = run.get("server_cpu_s", -1)
    text = (f"{compact(run[rate])} {rate.removesuffix('_per_s')}/s, "
            f"{compact(per_cpu)} per server CPU-s (server "
            f"{100 * server / seconds:.0f} %, generator "
            f"{100 * run.get('generator_cpu_share', 0):.0f} %)" if seconds and server >= 0 else "")
    if "violations" in run:
        text += (f"; lost {run['lost']}, late or repeated {run['late_or_repeated']}, "
                 f"out of order {run['out_of_order']}")
    return text


def load_results(path):
    by_scenario = {}
    with open(path) as lines:
        for line in lines:
            line = line.strip()
            if not line:
                continue
            record = json.loads(line)
            by_scenario.setdefault(record["scenario"], {}).setdefault(
                record["server"], []).append(record["result"])
    return {scenario: {server: series(runs) for server, runs in servers.items()}
            for scenario, servers in by_scenario.items()}


# ---- tables -------------------------------------------------------------------------------------

def rate_table(scenario, rate, unit, extra=None):
    """Rows: servers. Columns: the rate (median, min-max, ratios), the same per CPU-second,
    latency, and how busy the server and the generator were."""
    if not scenario:
        return "Not measured in this run.\n"
    tcp = scenario.get("tcp")
    beast = scenario.get("beast")
    per_cpu = f"{rate.removesuffix('_per_s')}_per_server_cpu_s"
    head = (f"| server | {unit}/s | min–max | ÷ TCP | ÷ Beast | {unit} per server CPU-s | ÷ TCP "
            f"| ÷ Beast | latency p50 / p99 / p99.9 (µs) | server CPU | generator CPU |")
    if extra:
        head += f" {extra[0]} |"
    rows = [head, head_rule(head)]
    for key, name, _ in SERVERS:
        s = scenario.get(key)
        if not s:
            continue
        value, cpu = s.median(rate), s.median(per_cpu)
        latency = " / ".join(compact(s.median(f"latency_us.{p}")) for p in ("p50", "p99", "p999"))
        row = (f"| {name} | {compact(value)} | {spread(s.values(rate))} "
               f"| {ratio(value, tcp and tcp.median(rate))} "
               f"| {ratio(value, beast and beast.median(rate))} "
               f"| {compact(cpu)} | {ratio(cpu, tcp and tcp.median(per_cpu))} "
               f"| {ratio(cpu, beast and beast.median(per_cpu))} | {latency} "
               f"| {s.share('server_cpu_s')} | {s.share_generator()} |")
        if extra:
            row += f" {extra[1](s)} |"
        rows.append(row)
    return "\n".join(rows) + "\n"


def head_rule(head):
    return "|" + "---|" * (head.count("|") - 1)


def idle_table(results):
    plain, touched = results.get("idle", {}), results.get("idle-touched", {})
    if not plain and not touched:
        return "Not measured in this run.\n"
    key = "bytes_per_connection"
    head = ("| server | bytes per idle connection | min–max | ÷ Beast | after one message | min–max "
            "| ÷ Beast |")
    rows = [head, head_rule(head)]
    beast_plain = plain.get("beast") and plain["beast"].median(key)
    beast_touched = touched.get("beast") and touched["beast"].median(key)
    for server, name, _ in SERVERS:
        a, b = plain.get(server), touched.get(server)
        if not a and not b:
            continue
        va = a.median(key) if a else None
        vb = b.median(key) if b else None
        rows.append(f"| {name} | {bytes_text(va)} | {bytes_spread(a, key)} | {ratio(va, beast_plain)} "
                    f"| {bytes_text(vb)} | {bytes_spread(b, key)} | {ratio(vb, beast_touched)} |")
    return "\n".join(rows) + "\n"


def large_idle_text(results, meta):
    """duplex alone with 100,000 idle connections, or why that did not run."""
    count = meta.get("large_idle_connections", 100000)
    large = results.get("idle-large", {}).get("duplex")
    if large:
        key = "bytes_per_connection"
        return (f"With {count:,} idle connections duplex holds {bytes_text(large.median(key))} "
                f"per connection ({bytes_spread(large, key)}).\n")
    why = meta.get("large_idle_skipped") or "not measured in this run"
    return f"With {count:,} idle connections: {why}.\n"


DEFLATE_ECHO_SCENARIOS = [
    ("deflate-echo-200", "200 B"),
    ("deflate-echo-16k", "16 KiB"),
]


def deflate_table(results):
    """permessage-deflate: compressed echo of JSON-like text (the rate, the rate per second of
    server CPU and the server CPU per message, what the echoes weighed compressed) and memory
    per idle connection with deflate negotiated, untouched and after one compressed message."""
    rows = []
    head = ("| server | message | messages/s | messages per server CPU-s | server CPU per message "
            "| ÷ Beast | compressed to |")
    for scenario, size in DEFLATE_ECHO_SCENARIOS:
        runs = results.get(scenario, {})
        beast = runs.get("beast")
        beast_cpu = beast and beast.median("messages_per_server_cpu_s")
        for key, name, _ in SERVERS:
            s = runs.get(key)
            if not s:
                continue
            cpu = s.median("messages_per_server_cpu_s")
            fraction = s.median("compressed_fraction")
            rows.append(f"| {name} | {size} | {compact(s.median('messages_per_s'))} "
                        f"| {compact(cpu)} | {f'{1e6 / cpu:.1f} µs' if cpu else '–'} "
                        f"| {ratio(cpu, beast_cpu)} "
                        f"| {f'{100 * fraction:.0f} %' if fraction else '–'} |")
    text = "\n".join([head, head_rule(head)] + rows) + "\n" if rows else "Not measured in this run.\n"
    runs = results.get("deflate-broadcast", {})
    if runs:
        head = ("| server | deliveries/s | deliveries per server CPU-s | server CPU per delivery "
                "| lost, late or out of order |")
        rows = [head, head_rule(head)]
        for key, name, _ in SERVERS:
            s = runs.get(key)
            if not s:
                continue
            cpu = s.median("deliveries_per_server_cpu_s")
            rows.append(f"| {name} | {compact(s.median('deliveries_per_s'))} | {compact(cpu)} "
                        f"| {f'{1e6 / cpu:.2f} µs' if cpu else '–'} "
                        f"| {compact(s.median('violations'))} |")
        text += "\n" + "\n".join(rows) + "\n"
    plain, touched = results.get("deflate-idle", {}), results.get("deflate-idle-touched", {})
    if plain or touched:
        key = "bytes_per_connection"
        head = ("| server | bytes per idle connection, deflate negotiated | connections "
                "| after one compressed message | connections |")
        rows = [head, head_rule(head)]
        for server, name, _ in SERVERS:
            a, b = plain.get(server), touched.get(server)
            if not a and not b:
                continue
            count = lambda s: f"{int(s.median('connections')):,}" if s else "–"
            rows.append(f"| {name} | {bytes_text(a.median(key) if a else None)} | {count(a)} "
                        f"| {bytes_text(b.median(key) if b else None)} | {count(b)} |")
        text += "\n" + "\n".join(rows) + "\n"
    return text


def tls_idle_table(results):
    """The same server program (examples/echo_server) over ws:// and wss://, measured by one
    client (tls_idle.py), so the difference is what TLS costs an idle connection."""
    tls = results.get("idle-tls", {})
    if not tls:
        return "Not measured in this run.\n"
    key = "bytes_per_connection"
    head = "| scheme | bytes per idle connection | min–max |"
    rows = [head, head_rule(head)]
    for scheme, name in (("ws", "ws:// (plain TCP)"), ("wss", "wss:// (TLS, OpenSSL)")):
        s = tls.get(scheme)
        if s:
            rows.append(f"| {name} | {bytes_text(s.median(key))} | {bytes_spread(s, key)} |")
    return "\n".join(rows) + "\n"


def bytes_text(value):
    if value is None:
        return "–"
    return f"{value / 1024:.1f} KiB" if value >= 10240 else f"{value:,.0f} B"


def bytes_spread(s, key):
    values = s.values(key) if s else []
    return f"{bytes_text(min(values))}–{bytes_text(max(values))}" if values else "–"


# ---- micro benchmarks ---------------------------------------------------------------------------

def size_text(n):
    n = int(n)
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n >> 10} KiB"
    return f"{n} B"


def describe(name):
    parts = name.split("/")
    what, args = parts[0], parts[1:]
    texts = ["ASCII", "Latin with accents", "CJK", "emoji"]
    lengths = {"20": "7-bit length", "1000": "16-bit length", "100000": "64-bit length"}
    if what == "bm_memcpy":
        return f"memcpy, {size_text(args[0])} (reference)"
    if what == "bm_mask":
        alignment = "aligned" if args[1] == "0" else f"misaligned by {args[1]}, key phase 1"
        return f"masking in place, {size_text(args[0])}, {alignment}"
    if what == "bm_mask_pieces":
        return "masking 64 KiB in place in 1,448-byte pieces (one TCP segment each)"
    if what == "bm_utf8":
        return f"UTF-8 validation, 64 KiB {texts[int(args[0])]}"
    if what == "bm_frame_header_encode":
        return f"frame header encode (server, unmasked), {lengths.get(args[0], args[0])}"
    if what == "bm_frame_header_decode":
        return f"frame header decode (masked), {lengths.get(args[0], args[0])}"
    if what == "bm_parse_small_frames":
        return "server session parsing 1,000 masked 20-byte text frames from one buffer"
    if what == "bm_encode_small_frames":
        return "server session encoding 1,000 20-byte text frames"
    return name


def duration_text(value, unit):
    ns = value * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}.get(unit, 1)
    for scale, name in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if ns >= scale:
            return f"{ns / scale:.3g} {name}"
    return f"{ns:.3g} ns"


def micro_section(path):
    if not os.path.exists(path):
        return "Not run (Google Benchmark was not found).\n"
    with open(path) as f:
        data = json.load(f)
    head = "| benchmark | CPU time per iteration | throughput |"
    rows = [head, head_rule(head)]
    for b in data["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        throughput = []
        if "bytes_per_second" in b:
            throughput.append(f"{b['bytes_per_second'] / 1e9:.2f} GB/s")
        if "items_per_second" in b:
            throughput.append(f"{b['items_per_second'] / 1e6:.1f} M/s")
        rows.append(f"| {describe(b['name'])} | {duration_text(b['cpu_time'], b['time_unit'])} "
                    f"| {', '.join(throughput)} |")
    context = data.get("context", {})
    note = (f"GB/s is 10⁹ bytes per second; M/s is millions of items (frames, headers) per second. "
            f"Google Benchmark {context.get('library_build_type', '')} library build, "
            f"CPU scaling {'on' if context.get('cpu_scaling_enabled') else 'off'}.")
    return "\n".join(rows) + "\n\n" + note + "\n"


# The builds of benchmarks/micro/flavours.sh, in the order of its table's columns.
FLAVOURS = [("gcc", "g++ -O3"), ("gcc-native", "g++ -O3 -march=native"),
            ("clang", "clang++ -O3"), ("clang-native", "clang++ -O3 -march=native")]


def best_runs(directory, prefix):
    """{benchmark name: best bytes/s} over the rounds flavours.sh ran of one binary: the run
    least disturbed by other work on the machine."""
    best = {}
    for path in sorted(glob.glob(os.path.join(directory, f"{prefix}-r*.json"))):
        with open(path) as f:
            for b in json.load(f)["benchmarks"]:
                if b.get("run_type", "iteration") == "iteration" and "bytes_per_second" in b:
                    best[b["name"]] = max(best.get(b["name"], 0), b["bytes_per_second"])
    return best


def flavour_table(directory):
    """Masking (and the small-frame parse that includes it) in GB/s for every build that
    flavours.sh measured, with each build's ratio to the generic g++ build; with a baseline,
    before -> after in each cell."""
    after = {key: best_runs(directory, f"micro-{key}") for key, _ in FLAVOURS}
    before = {key: best_runs(directory, f"base-{key}") for key, _ in FLAVOURS}
    columns = [(key, label) for key, label in FLAVOURS if after[key]]
    if not columns:
        return "Not measured in this run.\n"
    with_baseline = any(before.values())
    names = [name for name in after[columns[0][0]]
             if name.startswith(("bm_mask", "bm_parse_small_frames"))]
    head = "| benchmark | " + " | ".join(label for _, label in columns) + " |"
    rows = [head, head_rule(head)]
    base = after.get("gcc", {})
    for name in names:
        cells = []
        for key, _ in columns:
            value = after[key].get(name)
            if value is None:
                cells.append("–")
                continue
            cell = f"{value / 1e9:.1f}"
            if with_baseline and name in before[key]:
                cell = f"{before[key][name] / 1e9:.1f} → {cell}"
            if key != "gcc" and base.get(name):
                cell += f" ({value / base[name]:.2f}×)"
            cells.append(cell)
        rows.append(f"| {describe(name)} | " + " | ".join(cells) + " |")
    note = ("GB/s (10⁹ bytes per second of CPU time), the best of the rounds run; in parentheses, "
            "the ratio to the generic g++ build")
    if with_baseline:
        note += "; before → after: the baseline headers, then the current ones"
    return "\n".join(rows) + "\n\n" + note + ".\n"


def micro_chart_rows(path):
    """(size, memcpy, mask aligned, mask misaligned) in GB/s, for the masking chart."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        data = json.load(f)
    table = {}
    for b in data["benchmarks"]:
        parts = b["name"].split("/")
        if parts[0] == "bm_memcpy":
            table.setdefault(int(parts[1]), {})["memcpy"] = b["bytes_per_second"] / 1e9
        elif parts[0] == "bm_mask":
            column = "aligned" if parts[2] == "0" else "misaligned"
            table.setdefault(int(parts[1]), {})[column] = b["bytes_per_second"] / 1e9
    return [(size, row.get("memcpy", 0), row.get("aligned", 0), row.get("misaligned", 0))
            for size, row in sorted(table.items())]


# ---- charts -------------------------------------------------------------------------------------

class chart:
    """A gnuplot script for one PNG of one or more bar panels."""

    def __init__(self, path, panels):
        self.path = path
        self.lines = [f'set terminal pngcairo size {max(480, 420 * panels)},420 font "sans,9"',
                      f'set output "{path}"',
                      f"set multiplot layout 1,{panels}",
                      "set style fill solid 0.85 noborder", "set boxwidth 0.7",
                      "set grid ytics", "set xtics rotate by -35 nomirror",
                      'set format y "%.1s%c"', "set yrange [0:*]", "set key off",
                      "set termoption noenhanced",  # names with underscores, as written
                      "set offsets 0,0,graph 0.1,0",
                      "set bmargin 8"]
        self.count = 0

    def bars(self, title, ylabel, rows):
        """rows: (label, median, low, high, colour)."""
        self.count += 1
        block = f"$d{self.count}"
        self.lines.append(f"{block} << EOD")
        for label, value, low, high, colour in rows:
            self.lines.append(f'"{label}" {value} {low} {high} {int(colour[1:], 16)} '
                              f'"{compact(value)}"')
        self.lines += ["EOD", f'set title "{title}"', f'set ylabel "{ylabel}"',
                       f"set xrange [-0.6:{len(rows) - 0.4}]",
                       f"plot {block} using 0:2:5:xtic(1) with boxes lc rgb variable, "
                       f"{block} using 0:2:3:4 with yerrorbars lc rgb 'black' ps 0, "
                       f"{block} using 0:4:6 with labels offset 0,0.7"]

    def render(self, script_path):
        self.lines.append("unset multiplot")
        with open(script_path, "w") as f:
            f.write("\n".join(self.lines) + "\n")
        subprocess.run(["gnuplot", script_path], check=True)


def bar_rows(scenario, key):
    rows = []
    for server, name, colour in SERVERS:
        s = scenario.get(server)
        if s and s.values(key):
            values = s.values(key)
            rows.append((name, statistics.median(values), min(values), max(values), colour))
    return rows


def draw_charts(results, micro_path, image_dir, work_dir, meta):
    os.makedirs(image_dir, exist_ok=True)
    drawn = {}

    def draw(name, panels):
        panels = [(t, y, rows) for t, y, rows in panels if rows]
        if not panels or not shutil.which("gnuplot"):
            return
        c = chart(os.path.join(image_dir, f"{name}.png"), len(panels))
        for title, ylabel, rows in panels:
            c.bars(title, ylabel, rows)
        c.render(os.path.join(work_dir, f"{name}.gp"))
        drawn[name] = True

    draw("echo", [(short, "messages/s", bar_rows(results.get(key, {}), "messages_per_s"))
                  for key, _, short in ECHO_SCENARIOS])
    draw("echo_per_cpu", [(short, "messages per server CPU-second",
                           bar_rows(results.get(key, {}), "messages_per_server_cpu_s"))
                          for key, _, short in ECHO_SCENARIOS])
    counts = {"subscribers": f"{meta.get('subscribers', 0):,}",
              "few_subscribers": f"{meta.get('few_subscribers', 0):,}"}
    draw("broadcast", [(short.format(**counts), "deliveries/s",
                        bar_rows(results.get(key, {}), "deliveries_per_s"))
                       for key, _, short in BROADCAST_SCENARIOS])
    draw("broadcast_per_cpu", [(short.format(**counts), "deliveries per server CPU-second",
                                bar_rows(results.get(key, {}), "deliveries_per_server_cpu_s"))
                               for key, _, short in BROADCAST_SCENARIOS])
    draw("idle", [("idle", "bytes per connection",
                   bar_rows(results.get("idle", {}), "bytes_per_connection")),
                  ("after one message", "bytes per connection",
                   bar_rows(results.get("idle-touched", {}), "bytes_per_connection"))])
    k = results.get("connect", {})
    draw("connect", [("handshakes/s", "handshakes/s", bar_rows(k, "handshakes_per_s")),
                     ("per server CPU-second", "handshakes per CPU-second",
                      bar_rows(k, "handshakes_per_server_cpu_s"))])

    rows = micro_chart_rows(micro_path)
    if rows and shutil.which("gnuplot"):
        script = os.path.join(work_dir, "micro.gp")
        with open(script, "w") as f:
            f.write('set terminal pngcairo size 640,400 font "sans,9"\n')
            f.write(f'set output "{os.path.join(image_dir, "micro.png")}"\n')
            f.write("$d << EOD\n" + "\n".join(" ".join(str(v) for v in r) for r in rows)
                    + "\nEOD\n")
            f.write('set logscale x 2\nset format x "%.0b%B"\nset xlabel "bytes"\n'
                    'set ylabel "GB/s"\nset yrange [0:*]\nset grid\nset key top right\n'
                    'set title "Masking in place and memcpy"\n'
                    "plot $d using 1:2 with linespoints title 'memcpy', "
                    "$d using 1:3 with linespoints title 'mask, aligned', "
                    "$d using 1:4 with linespoints title 'mask, misaligned by 3'\n")
        subprocess.run(["gnuplot", script], check=True)
        drawn["micro"] = True
    return drawn


# ---- the machine --------------------------------------------------------------------------------

def run(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False,
                              shell=isinstance(command, str)).stdout.strip()
    except OSError:
        return ""


def header_value(path, pattern):
    try:
        with open(path) as f:
            match = re.search(pattern, f.read())
        return match.group(1) if match else ""
    except OSError:
        return ""


def machine_section(meta):
    cpu = run("lscpu | sed -n 's/^Model name: *//p'")
    hypervisor = run("lscpu | sed -n 's/^Hypervisor vendor: *//p'")
    memory = run("awk '/MemTotal/ {printf \"%.0f GiB\", $2 / 1048576}' /proc/meminfo")
    system = header_value("/etc/os-release", r'PRETTY_NAME="([^"]*)"')
    cache = os.path.join(meta.get("build_dir", ""), "CMakeCache.txt")
    compiler = header_value(cache, r"CMAKE_CXX_COMPILER:\w+=(.*)") or "c++"
    boost = header_value("/usr/include/boost/version.hpp", r'BOOST_LIB_VERSION "([^"]*)"')
    wspp = ".".join(header_value("/usr/include/websocketpp/version.hpp",
                                 rf"{part}_version = (\d+)") for part in ("major", "minor", "patch"))
    ws = ""
    try:
        with open(os.path.join(meta.get("node_modules", ""), "ws", "package.json")) as f:
            ws = json.load(f)["version"]
    except (OSError, KeyError, ValueError):
        pass
    # The code that was measured: run.sh records it when the run starts.
    commit = meta.get("commit") or run("git rev-parse --short HEAD")
    dirty = meta["dirty"] if "dirty" in meta else run("git status --porcelain -- include benchmarks")
    lines = [
        f"- {run('nproc')} cores: {cpu}{f' ({hypervisor} VM)' if hypervisor else ''}, {memory}; "
        f"{system}, Linux {run('uname -r')}",
        f"- {run([compiler, '--version']).splitlines()[0] if run([compiler, '--version']) else compiler}"
        f", CMake Release (`-O3`)",
        f"- Boost {boost.replace('_', '.')} (Beast), websocketpp {wspp}, Node {run('node --version')} "
        f"with ws {ws}, Google Benchmark {run(['dpkg-query', '-W', '-f', '${Version}', 'libbenchmark-dev'])}",
        f"- duplex at {commit}{' with uncommitted changes to include/ or benchmarks/' if dirty else ''}",
        f"- run started {meta.get('started', '?')}; load average {meta.get('loadavg_at_start', '?')} "
        f"before the build; {meta.get('rounds')} rounds; server on core {meta.get('server_core')}, "
        f"generator on core {meta.get('generator_core')}",
    ]
    return "\n".join(lines) + "\n"


# ---- the page -----------------------------------------------------------------------------------

def image(drawn, name, alt):
    return f"\n![{alt}](benchmarks/{name}.png)\n" if name in drawn else ""


def redis_section(results_dir):
    """redis_fanout's tables (fan-out, ramp, channel layouts) as run.sh saved them."""
    path = os.path.join(results_dir, "redis.md")
    if not os.path.exists(path):
        return ("Not measured in this run: `redis_fanout` was not built, `redis-server` is not "
                "installed, or the run failed (see `redis.err` beside the results).")
    with open(path) as f:
        tables = [t.strip() for t in f.read().strip().split("\n\n") if t.strip()]
    titles = ["### Fan-out: Redis against in-process rooms",
              "### Ramp: publishes per second until something gives",
              "### Channel layouts: a channel per room against one channel"]
    return "\n\n".join(f"{title}\n\n{table}" for title, table in zip(titles, tables))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--results")
    parser.add_argument("--doc")
    parser.add_argument("--template")
    parser.add_argument("--flavours", metavar="DIR",
                        help="only print the table of benchmarks/micro/flavours.sh's builds")
    parser.add_argument("--summary", metavar="FILE",
                        help="only print one line about one wsload --json result")
    args = parser.parse_args()
    if args.flavours:
        print(flavour_table(args.flavours), end="")
        return
    if args.summary:
        with open(args.summary) as f:
            print(summary_line(json.load(f)))
        return
    if not (args.results and args.doc and args.template):
        parser.error("--results, --doc and --template are required")

    with open(os.path.join(args.results, "meta.json")) as f:
        meta = json.load(f)
    results_path = os.path.join(args.results, "results.jsonl")
    results = load_results(results_path) if os.path.exists(results_path) else {}
    micro_path = os.path.join(args.results, "micro.json")

    doc_dir = os.path.dirname(os.path.abspath(args.doc))
    image_dir = os.path.join(doc_dir, "benchmarks")
    drawn = draw_charts(results, micro_path, image_dir, args.results, meta)
    if os.path.exists(results_path):
        shutil.copy(results_path, os.path.join(image_dir, "results.jsonl"))

    echo = []
    for key, title, _ in ECHO_SCENARIOS:
        # Payload MB/s (one way) only where it says something: with 16 KiB messages.
        mb_per_s = ("payload MB/s", lambda s: compact(s.median("mb_per_s")))
        echo.append(f"### {title}\n\n" + rate_table(results.get(key), "messages_per_s",
                                                     "messages",
                                                     mb_per_s if key == "echo-16k" else None))
    echo_text = "\n".join(echo) + image(drawn, "echo", "Echo throughput") + image(
        drawn, "echo_per_cpu", "Echo: messages per second of server CPU")

    counts = {"subscribers": f"{meta.get('subscribers', 0):,}",
              "few_subscribers": f"{meta.get('few_subscribers', 0):,}"}
    violations = ("lost / late or repeated / out of order",
                  lambda s: " / ".join(f"{sum(s.values(key)):.0f}"
                                       for key in ("lost", "late_or_repeated", "out_of_order")))
    broadcast = []
    for key, title, _ in BROADCAST_SCENARIOS:
        broadcast.append(f"### {title.format(**counts)}\n\n" + rate_table(
            results.get(key), "deliveries_per_s", "deliveries", violations))
    broadcast_text = "\n".join(broadcast)
    broadcast_text += ("\nLatency here is the delay from publishing a message to its delivery "
                       "to each subscriber: the spread across the room, not one round trip. "
                       "Every subscriber checks that each publisher's messages arrive once and "
                       "in order; any violation fails the run.\n")
    broadcast_text += image(drawn, "broadcast", "Broadcast") + image(
        drawn, "broadcast_per_cpu", "Broadcast: deliveries per second of server CPU")

    connect_text = rate_table(results.get("connect"), "handshakes_per_s", "handshakes")
    connect_text += ("\nThe TCP ceiling's 101 carries no accept key (no SHA-1, no header "
                     "parsing): its row is the cost of the TCP connection alone.\n")
    connect_text += image(drawn, "connect", "Handshakes")

    micro_text = micro_section(micro_path) + image(drawn, "micro", "Masking and memcpy")

    if meta.get("quick"):
        status = ("**A quick smoke run (`DUPLEX_BENCH_QUICK=1`): durations and counts far too "
                  "small for these numbers to mean anything.**")
    else:
        status = ("Written by `benchmarks/run.sh` from a real run; edit "
                  "`benchmarks/report_template.md`, not this page.")
    with open(os.path.join(args.results, "commands.txt")) as f:
        commands = f.read().strip()

    values = {
        "status": status,
        "rounds": str(meta.get("rounds")),
        "raw_link": "benchmarks/results.jsonl",
        "warmup": str(meta.get("warmup_s")),
        "duration": str(meta.get("duration_s")),
        "subscribers": f"{meta.get('subscribers', 0):,}",
        "few_subscribers": f"{meta.get('few_subscribers', 0):,}",
        "idle_connections": f"{meta.get('idle_connections', 0):,}",
        "server_core": str(meta.get("server_core")),
        "machine": machine_section(meta),
        "echo": echo_text,
        "broadcast": broadcast_text,
        "idle": idle_table(results) + "\n" + large_idle_text(results, meta) +
                image(drawn, "idle", "Memory per idle connection"),
        "idle_tls": tls_idle_table(results),
        "deflate": deflate_table(results),
        "connect": connect_text,
        "micro": micro_text,
        "micro_flavours": flavour_table(os.path.join(args.results, "flavours")),
        "commands": commands,
        "redis": redis_section(args.results),
    }
    with open(args.template) as f:
        page = f.read()
    for key, value in values.items():
        page = page.replace("{{" + key + "}}", value.strip("\n"))
    os.makedirs(doc_dir, exist_ok=True)
    with open(args.doc, "w") as f:
        f.write(page)


if __name__ == "__main__":
    main()
