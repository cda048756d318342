#!/usr/bin/env python3
"""bench/put_section.py RESULTS HEADING < section

Replace the section of bench/results.md that starts with the line
"## HEADING..." (up to the next "## " heading) by the text on stdin, or
append it when the file has no such section yet.  Every bench script writes
only its own section, so one can be rerun without losing the others."""
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
m = re.search(r'^## ' + re.escape(heading) + r'\b.*?(?=^## |\Z)', text, re.S | re.M)
if m:
    rest = text[m.end():]
    text = text[:m.start()] + section + ('\n' if rest else '') + rest
else:
    text = text.rstrip('\n') + '\n\n' + section
with open(path, 'w') as f:
    f.write(text)
