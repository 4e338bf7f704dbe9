#!/usr/bin/env python3
"""scripts/longest.py [N]: the N longest C functions in src/ (signature line to closing brace).
A text scan, not a parser: good enough for this code base's one style (docs/architecture.md)."""
import re,sys,glob
res=[]
for f in sorted(glob.glob('src/**/*.c',recursive=True)+glob.glob('src/**/*.h',recursive=True)):
    lines=open(f).read().split('\n')
    i=0
    while i<len(lines):
        l=lines[i]
        # function definition start: non-indented line with '(' and not ending with ';', not a macro/comment
        if re.match(r'^[A-Za-z_][A-Za-z0-9_ \*]*\b([A-Za-z_][A-Za-z0-9_]*)\s*\(',l) and not l.rstrip().endswith(';') and not l.startswith(('typedef','#','static const','const ')) or re.match(r'^static [A-Za-z_].*\(',l) and not l.rstrip().endswith(';'):
            m=re.search(r'([A-Za-z_][A-Za-z0-9_]*)\s*\(',l)
            # find opening brace
            j=i
            while j<len(lines) and '{' not in lines[j] and not lines[j].rstrip().endswith(';'): j+=1
            if j<len(lines) and '{' in lines[j]:
                depth=0;k=j
                while k<len(lines):
                    depth+=lines[k].count('{')-lines[k].count('}')
                    if depth==0: break
                    k+=1
                res.append((k-i+1,m.group(1),f,i+1))
                i=k+1; continue
        i+=1
res.sort(reverse=True)
for r in res[:int(sys.argv[1]) if len(sys.argv)>1 else 8]: print("%4d  %-28s %s:%d"%r)
