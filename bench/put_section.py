#!/usr/bin/env python3
"""bench/put_section.py RESULTS HEADING < section

Replace the section of bench/results.md that starts with the line
"## HEADING" (up to the next "## " heading) by the text on stdin, or
append it when the file has no such section yet.  The heading line must be
HEADING exactly, or HEADING followed by " -- " and more (a heading that
carries the date of the run), so that "tiering" does not match the section
"tiering vs pg_partman".  Every bench script writes only its own section, so
one can be rerun without losing the others."""
import re
import sys

path, heading = sys.argv[1], sys.argv[2]
section = sys.stdin.read().rstrip('\n') + '\n'
try:
    text = open(path).read()
except FileNotFoundError:
    text = ''
if not text.strip():
    text = '# fleet benchmark results\n'
m = re.search(r'^## ' + re.escape(heading) + r'(?:$| -- ).*?(?=^## |\Z)', text, re.S | re.M)
if m:
    rest = text[m.end():]
    text = text[:m.start()] + section + ('\n' if rest else '') + rest
else:
    text = text.rstrip('\n') + '\n\n' + section
with open(path, 'w') as f:
    f.write(text)
