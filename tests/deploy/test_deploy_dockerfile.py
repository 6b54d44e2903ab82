"""The Dockerfile: lint clean, built through scripts/setup.sh, layered, non-root, healthy.

No Docker engine is needed: the Dockerfile is parsed here and linted with hadolint.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest
from deploy_helpers import REPO, kustomize, pod_templates, run, tool, workloads

DOCKERFILE = REPO / "Dockerfile"


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if logical and stripped.startswith("#"):
            continue  # comment inside a continued instruction
        if stripped.endswith("\\"):
            logical += stripped[:-1].rstrip() + " "
            continue
        logical += stripped
        keyword, _, rest = logical.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        logical = ""
    assert not logical, "Dockerfile ends inside a continued line"
    return instructions


def exec_form(arguments: str) -> list[str]:
    assert arguments.startswith("["), f"expected JSON exec form, got {arguments!r}"
    return json.loads(arguments)


def env_pairs(arguments: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(arguments))


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_hadolint_passes():
    result = run([tool("hadolint"), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path):
    """Control: the linter run above really checks (an unpinned apt install must fail)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get update && apt-get install -y curl\n")
    result = run([tool("hadolint"), "--no-color", str(bad)])
    assert result.returncode != 0
    assert "DL3008" in result.stdout or "DL3009" in result.stdout


def test_parser_joins_continuations():
    parsed = parse_dockerfile("FROM a\n# c\nRUN one \\\n  # inner\n  two\nUSER 1\n")
    assert parsed == [("FROM", "a"), ("RUN", "one two"), ("USER", "1")]


def setup_runs(instructions) -> list[int]:
    return [
        i for i, (kw, args) in enumerate(instructions) if kw == "RUN" and re.search(r"\bbash scripts/setup\.sh\b", args)
    ]


def test_image_is_built_by_scripts_setup_sh(instructions):
    """Both install steps call the CI setup script; none installs packages with pip itself."""
    runs = setup_runs(instructions)
    assert len(runs) >= 1, "no RUN calls bash scripts/setup.sh"
    for kw, args in instructions:
        if kw == "RUN":
            assert not re.search(r"\bpip3? install\b", args), f"RUN installs with pip directly: {args}"
    assert (REPO / "scripts" / "setup.sh").is_file()


def test_setup_script_knows_the_variables_the_dockerfile_sets(instructions):
    setup = (REPO / "scripts" / "setup.sh").read_text()
    env = {}
    for kw, args in instructions:
        if kw == "ENV":
            env.update(env_pairs(args))
    for name in ("S1SERVE_DEVICE", "S1SERVE_VENV", "S1SERVE_EXTRAS", "PYTHON"):
        assert name in env, f"Dockerfile does not set {name}"
        assert "${" + name in setup, f"scripts/setup.sh does not read {name}"
    venv_bin = env["S1SERVE_VENV"] + "/bin"
    assert env["PATH"].split(":")[0] == venv_bin, "the venv's bin must lead PATH"


def test_device_build_arg_selects_gpu_by_default_and_allows_cpu(instructions):
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for kw, a in instructions if kw == "ARG" and "=" in a}
    assert args.get("S1SERVE_DEVICE") == "gpu"
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert '"$DEVICE" = "cpu"' in setup  # the other value the build arg may take


def test_dependencies_are_installed_before_the_source_is_copied(instructions):
    """Layer caching: before the first setup.sh run only pyproject.toml and the script are copied."""
    first_setup = setup_runs(instructions)[0]
    copies = [args for kw, args in instructions[:first_setup] if kw == "COPY"]
    sources = [shlex.split(c)[:-1] for c in copies]
    flat = [s for group in sources for s in group if not s.startswith("--")]
    assert sorted(flat) == ["pyproject.toml", "scripts/setup.sh"], flat
    full_copy = [i for i, (kw, args) in enumerate(instructions) if kw == "COPY" and shlex.split(args)[0] == "."]
    assert full_copy and full_copy[0] > first_setup, "the source must be copied after the dependency layer"
    assert any(i > full_copy[0] for i in setup_runs(instructions)), "setup.sh must run again on the real source"


def test_runs_as_non_root_user_matching_kubernetes(instructions):
    users = [args for kw, args in instructions if kw == "USER"]
    assert users, "no USER instruction"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric non-root uid lets Kubernetes check runAsNonRoot"
    for path in ("base", "training", "overlays/multinode"):
        for workload in workloads(kustomize(path)):
            for role, template in pod_templates(workload):
                ctx = template["spec"]["securityContext"]
                assert ctx["runAsNonRoot"] is True, (path, role)
                assert ctx["runAsUser"] == int(uid), (path, role)
                if gid:
                    assert ctx["runAsGroup"] == int(gid), (path, role)


def test_model_cache_is_a_volume(instructions):
    env = {}
    for kw, args in instructions:
        if kw == "ENV":
            env.update(env_pairs(args))
    volumes = [v for kw, args in instructions if kw == "VOLUME" for v in exec_form(args)]
    assert env["S1SERVE_CACHE"] in volumes
    assert env["HF_HOME"].startswith(env["S1SERVE_CACHE"] + "/")


def test_healthcheck_probes_health_with_a_model_load_grace_period(instructions):
    checks = [args for kw, args in instructions if kw == "HEALTHCHECK"]
    assert len(checks) == 1
    options, _, command = checks[0].partition("CMD")
    opts = dict(re.findall(r"--([a-z-]+)=(\S+)", options))
    assert int(opts["start-period"].rstrip("s")) >= 600, "a large model needs 10+ minutes to load"
    cmd = exec_form(command.strip())
    assert "/health" in cmd
    assert any(c.endswith("deploy/docker/healthcheck.py") for c in cmd)


def test_entrypoint_serves_through_tini_and_the_env_entrypoint(instructions):
    entrypoint = exec_form([args for kw, args in instructions if kw == "ENTRYPOINT"][-1])
    assert entrypoint[0] == "tini" and entrypoint[1] == "--"
    assert entrypoint[2] == "s1serve-entrypoint"
    installs = " ".join(args for kw, args in instructions if kw == "RUN")
    assert "deploy/docker/entrypoint.sh /usr/local/bin/s1serve-entrypoint" in installs
    assert "deploy/docker/ray-node.sh /usr/local/bin/s1serve-ray-node" in installs
    exposed = [args for kw, args in instructions if kw == "EXPOSE"]
    assert exposed == ["8000"]


def glob_regex(pattern: str) -> str:
    """Regex for a .dockerignore glob: ``*`` and ``?`` stop at ``/``, ``**`` crosses directories."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether .dockerignore drops ``path``: last matching pattern wins, ``!`` re-includes,
    and a pattern that matches a parent directory covers everything below it."""
    excluded = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        regex = glob_regex((raw[1:] if negate else raw).strip("/"))
        if any(re.fullmatch(regex, c) for c in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_what_the_build_needs_and_drops_the_rest(instructions):
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    needed = ["pyproject.toml", "scripts/setup.sh", "deploy/docker/entrypoint.sh", "deploy/docker/ray-node.sh"]
    needed += ["deploy/docker/healthcheck.py", "server/__init__.py", "budget/__init__.py"]
    for path in needed:
        assert not dockerignore_excludes(patterns, path), f".dockerignore drops {path}"
    for path in [".venv/bin/python", ".git/HEAD", "server/__pycache__/x.pyc", "deploy/k8s/base/hpa.yaml"]:
        assert dockerignore_excludes(patterns, path), f".dockerignore keeps {path}"
