"""`python -m taskflow.schedulers.drmaachild`: one DRMAA bulk submission, in a process of its own.

The request comes as JSON on stdin (see taskflow.schedulers.drmaa.request),
the answer as one JSON line on stdout: {"ids": [...]} or {"error": "..."}.
Its own process so that the environment libdrmaa needs at load time
(GLIBC_TUNABLES for a libdrmaa linked with libjemalloc) is set for it alone,
and so that the DRMAA session, its threads and its signal handlers never live
in taskflow's process.
"""
from __future__ import annotations

import json
import os
import sys


def main() -> int:
    request = json.load(sys.stdin)
    try:
        import drmaa
    except ImportError as e:  # the package is not installed
        print(json.dumps({"error": str(e) or type(e).__name__, "kind": "import"}))
        return 1
    except RuntimeError as e:  # the package's own: no libdrmaa found
        print(json.dumps({"error": str(e), "kind": "library"}))
        return 1
    except OSError as e:  # dlopen of libdrmaa (or of what it links) failed
        print(json.dumps({"error": str(e), "kind": "load"}))
        return 1
    # What was set only to load the library is not the job's: -V hands this environment to it.
    for name, value in request.get("restore", {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    session = drmaa.Session()
    try:
        session.initialize()
        try:
            template = session.createJobTemplate()
            try:
                template.remoteCommand = request["command"]
                template.args = request["args"]
                template.workingDirectory = request["cwd"]
                template.nativeSpecification = request["native"]
                ids = session.runBulkJobs(template, 1, request["workers"], 1)
            finally:
                session.deleteJobTemplate(template)
        finally:
            session.exit()
    except Exception as e:  # the DRM's refusal (drmaa.errors.*): one line for the user
        print(json.dumps({"error": f"{type(e).__name__}: {e}".replace("\n", " "), "kind": "drm"}))
        return 1
    print(json.dumps({"ids": list(ids)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
