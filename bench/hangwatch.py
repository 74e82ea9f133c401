#!/usr/bin/env python3
# Watches the coffer server processes of a running test (by their --config JSON): a process that
# is not stopped (SIGSTOP) and has not answered GET /v1/sys/health for four polls in a row gets
# every thread's stack dumped with gdb into <out>/stacks.<pid>.txt. Used to catch the soak's
# "node never answers again after SIGCONT" hang (bench/SOAK.md attempts 11, 27, 28).
#   python3 bench/hangwatch.py <out-dir> &   # then run bench/soak
import subprocess, json, time, urllib.request, os, re, sys
fails = {}
dumped = set()
out = sys.argv[1]
while True:
    ps = subprocess.run(['pgrep', '-fa', 'coffer server --config'], capture_output=True, text=True).stdout
    for line in ps.splitlines():
        pid, *args = line.split()
        m = re.search(r'--config (\S+)', line)
        if not m: continue
        try:
            cfg = json.load(open(m.group(1)))
            addr = cfg['listener'][0]['tcp']['address'] if isinstance(cfg.get('listener'), list) else cfg['listener']['tcp']['address']
        except Exception as e:
            try:
                addr = json.dumps(cfg)
                addr = re.search(r'"address": ?"([^"]+)"', addr).group(1)
            except Exception:
                continue
        try:
            st = open(f'/proc/{pid}/stat').read().split(')')[1].split()[0]
        except Exception:
            continue
        if st == 'T':
            fails[pid] = 0; continue
        try:
            urllib.request.urlopen(f'http://{addr}/v1/sys/health', timeout=3)
            fails[pid] = 0
        except urllib.error.HTTPError as e:
            # A sealed or failing node (5xx) for four polls is as suspect as a silent one.
            fails[pid] = fails.get(pid, 0) + 1 if e.code >= 500 else 0
        except Exception:
            fails[pid] = fails.get(pid, 0) + 1
        if fails.get(pid, 0) >= 4 and pid not in dumped:
            dumped.add(pid)
            with open(f'{out}/stacks.{pid}.txt', 'w') as f:
                f.write(f'{line}\nstate {st}\n')
                f.flush()
                r = subprocess.run(['gdb', '-p', pid, '-batch', '-ex', 'thread apply all bt'], capture_output=True, text=True, timeout=120)
                f.write(r.stdout); f.write(r.stderr)
            print(f'dumped {pid} {addr}', flush=True)
    time.sleep(2)
