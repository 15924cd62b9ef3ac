#!/usr/bin/python3
"""Run a program on a real pseudo-terminal and answer it as a person would.

Usage: /usr/bin/python3 pty_run.py JSON

JSON: {"argv": [...], "env": {...}, "cwd": DIR,
       "steps": [{"expect": REGEX, "send": TEXT}, ...],   # wait for REGEX in the screen text, then type TEXT
       "then": "sigterm" | "exit"}                         # after the steps: SIGTERM it, or wait for it to exit
Prints one JSON line: {"transcript": TEXT, "exitCode": N or null, "signal": N or null, "error": TEXT or null}.
"""
import json
import os
import pty
import re
import select
import signal
import sys
import time

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def main():
    spec = json.loads(sys.argv[1])
    pid, master = pty.fork()
    if pid == 0:
        os.chdir(spec.get("cwd", "."))
        os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
    seen = ""   # not yet matched
    transcript = ""
    error = None

    def read(timeout):
        nonlocal seen, transcript
        r, _, _ = select.select([master], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(master, 4096)
        except OSError:
            data = b""
        if not data:
            return False
        text = ANSI.sub("", data.decode("utf-8", "replace"))
        seen += text
        transcript += text
        return True

    try:
        for step in spec["steps"]:
            rx = re.compile(step["expect"])
            deadline = time.time() + step.get("timeout", 30)
            while True:
                m = rx.search(seen)
                if m:
                    seen = seen[m.end():]
                    break
                if time.time() > deadline:
                    raise TimeoutError("no %r on the terminal" % step["expect"])
                if not read(0.2):
                    raise EOFError("the program ended before %r" % step["expect"])
            if "send" in step:
                time.sleep(0.1)
                os.write(master, step["send"].encode())
        if spec.get("then") == "sigterm":
            os.kill(pid, signal.SIGTERM)
    except Exception as e:  # reported, then the child is ended
        error = str(e)
        os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 20
    status = None
    while time.time() < deadline:
        read(0.1)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    while read(0.05):  # drain
        if not select.select([master], [], [], 0)[0]:
            break
    print(json.dumps({
        "transcript": transcript,
        "exitCode": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "error": error,
    }))


if __name__ == "__main__":
    main()
