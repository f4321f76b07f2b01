"""Subtree transfer: load selected subtrees of an earlier stage's checkpoint into a freshly
initialised tree, and refuse (listing the paths) when the two do not line up.

Paths are matched inside each collection ('params', 'batch_stats': statistics travel with their
parameters). ``rename`` maps checkpoint path prefixes to model path prefixes before matching;
``allow`` names model subtrees whose problems are tolerated (fresh init kept, checkpoint-only
leaves ignored). Everything else that does not line up raises one ValueError.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jax

from jaxseg import checkpoint
from jaxseg.surgery.paths import flatten, matches, selector, unflatten

COLLECTIONS = ("params", "batch_stats")
MISSING = "missing in checkpoint"
EXTRA = "only in checkpoint"
SHAPE = "shape mismatch"
REASONS = (MISSING, EXTRA, SHAPE)


def parse_rename(rename: str | Mapping[str, str] | None) -> dict[str, str]:
    """{checkpoint prefix: model prefix} from a dict or the config form 'a/b:c/d, e:f/g'.

    Whitespace and leading/trailing '/' around each prefix are ignored; '' or None is no
    rename. A malformed item, an empty side or a repeated source prefix is an error.
    """
    if rename is None:
        return {}
    if isinstance(rename, str):
        pairs = []
        for item in rename.split(","):
            if not item.strip():
                continue
            parts = item.split(":")
            if len(parts) != 2:
                raise ValueError(
                    f"init_from.rename={rename!r}: {item.strip()!r} is not 'from:to' "
                    "(use 'ckpt/prefix:model/prefix, other:prefix')"
                )
            pairs.append((parts[0], parts[1]))
    else:
        pairs = list(dict(rename).items())
    out: dict[str, str] = {}
    for src, dst in pairs:
        src, dst = str(src).strip().strip("/"), str(dst).strip().strip("/")
        if not src or not dst:
            raise ValueError(f"init_from.rename={rename!r}: empty prefix in {src!r}:{dst!r}")
        if src in out:
            raise ValueError(f"init_from.rename={rename!r}: {src!r} is renamed twice")
        out[src] = dst
    return out


def _under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or lies below it (prefixes match at '/' boundaries)."""
    return path == prefix or path.startswith(prefix + "/")


def _rename(path: str, rules: dict[str, str]) -> tuple[str, str | None]:
    """(new path, the rule's source prefix or None): the longest matching prefix wins."""
    best = max((src for src in rules if _under(path, src)), key=len, default=None)
    if best is None:
        return path, None
    return rules[best] + path[len(best) :], best


def _split(path: str) -> tuple[str, str]:
    collection, inner = path.split("/", 1)
    return collection, inner


def _subtrees(paths: set[str]) -> list[str]:
    """Module-level names of ``paths`` (first two parts), to help fix a typo."""
    return sorted({"/".join(p.split("/")[: min(2, p.count("/"))]) or p for p in paths})


def _suggest_allow(offending: set[str], ok: set[str]) -> str:
    """A selector of the biggest subtrees holding only offending paths (collection-less)."""
    parts = set()
    for path in offending:
        names = path.split("/")
        for n in range(1, len(names) + 1):
            prefix = "/".join(names[:n])
            if not any(_under(p, prefix) for p in ok):
                parts.add(prefix)
                break
        else:
            parts.add(path)
    # Drop parts inside another part.
    keep = sorted(p for p in parts if not any(q != p and _under(p, q) for q in parts))
    return "+".join(re.escape(p) for p in keep)


def transfer(
    variables: dict[str, Any],
    source_dir: str,
    subtrees: str,
    rename: str | Mapping[str, str] | None = None,
    allow: str = "",
    step: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Replace the ``subtrees`` of ``variables`` ({'params', 'batch_stats'}) by the checkpoint's.

    ``subtrees`` and ``allow`` are selectors (``paths.selector``) of model paths inside a
    collection, e.g. 'encoder+bottleneck'. ``rename`` maps checkpoint prefixes to model
    prefixes ({'bottleneck': 'encoder/stage_2'} or 'bottleneck:encoder/stage_2,a:b'), applied
    before matching; a rule that renames no checkpoint path, or renames none into
    ``subtrees``, and renamed paths that collide are errors. ``step`` picks a saved step
    (default: the latest). ``source_dir`` is an orbax checkpoint folder (a run's
    ``checkpoints``).

    Returns (new variables, report) with JSON-serialisable report keys:
      'loaded'  model paths ('params/...', 'batch_stats/...') restored from the checkpoint;
      'renamed' [checkpoint path, model path] of the loaded leaves that were renamed;
      'skipped' [path, reason] of the problems tolerated by ``allow`` (reason starts with
                'missing in checkpoint', 'only in checkpoint' or 'shape mismatch');
      'kept'    model paths left at their fresh initialisation;
      'step'    the checkpoint step restored;
      'source'  the checkpoint folder read (``source_dir``).
    Any problem outside ``allow`` raises one ValueError listing every offending path by reason.
    """
    directory = source_dir
    available = checkpoint.steps(directory)
    if not available:
        raise FileNotFoundError(f"no checkpoint under {source_dir}")
    if step is None:
        step = available[-1]
    elif step not in available:
        raise FileNotFoundError(
            f"init_from: no checkpoint of step {step} under {directory}; saved: {available}"
        )
    saved = {
        p: s
        for p, s in checkpoint.leaf_shapes(directory, step).items()
        if "/" in p and _split(p)[0] in COLLECTIONS
    }
    current = flatten({c: variables[c] for c in COLLECTIONS if c in variables})
    shapes = {p: tuple(v.shape) for p, v in current.items()}
    plan = match(shapes, saved, subtrees, rename, allow, f"{directory} (step {step})")
    target = {
        src: jax.ShapeDtypeStruct(current[p].shape, current[p].dtype)
        for p, src in plan["sources"].items()
    }
    restored = flatten(checkpoint.restore_partial(directory, unflatten(target), step))
    return _merge(variables, current, plan, restored, int(step), directory)


def transfer_tree(
    variables: dict[str, Any],
    saved: Mapping[str, Any],
    subtrees: str,
    rename: str | Mapping[str, str] | None = None,
    allow: str = "",
    source: str = "",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``transfer`` from variables in memory (``saved`` = {'params': ..., 'batch_stats': ...} of
    numpy arrays, e.g. converted ImageNet weights) instead of a checkpoint folder: the same
    matching, errors and report ('step' None, 'source' = ``source``, the file they came from)."""
    flat = flatten({c: saved[c] for c in COLLECTIONS if c in saved})
    current = flatten({c: variables[c] for c in COLLECTIONS if c in variables})
    shapes = {p: tuple(v.shape) for p, v in current.items()}
    plan = match(shapes, {p: tuple(v.shape) for p, v in flat.items()}, subtrees, rename, allow,
                 source or "the given variables")  # fmt: skip
    values = {
        src: jax.numpy.asarray(flat[src], current[p].dtype) for p, src in plan["sources"].items()
    }
    return _merge(variables, current, plan, values, None, source)


def _merge(
    variables: dict[str, Any],
    current: dict[str, Any],
    plan: dict[str, Any],
    values: Mapping[str, Any],
    step: int | None,
    source: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``variables`` with the planned leaves taken from ``values`` (by checkpoint path), and
    the report ``transfer`` documents."""
    current = {**current, **{p: values[src] for p, src in plan["sources"].items()}}
    merged = {**variables, **unflatten(current)}  # keeps empty and other collections as given
    loaded = sorted(plan["sources"])
    return merged, {
        "loaded": loaded,
        "renamed": [[plan["sources"][p], p] for p in loaded if plan["sources"][p] != p],
        "skipped": plan["skipped"],
        "kept": sorted(set(current) - set(loaded)),
        "step": step,
        "source": source,
    }


def match(
    model: Mapping[str, tuple[int, ...]],
    saved: Mapping[str, tuple[int, ...]],
    subtrees: str,
    rename: str | Mapping[str, str] | None = None,
    allow: str = "",
    where: str = "the checkpoint",
) -> dict[str, Any]:
    """Plan a transfer from shapes alone: {'sources': {model path: checkpoint path},
    'skipped': [[path, reason]]}; raises the errors ``transfer`` documents.

    ``model`` and ``saved`` map 'params/...' / 'batch_stats/...' paths to shapes, so a study
    can check every transfer before training anything (from abstract shapes of both stages).
    """
    regex = selector(subtrees)
    if not regex:
        raise ValueError("init_from.subtrees is empty; name what to transfer, e.g. 'encoder'")
    allowed = selector(allow or "")
    rules = parse_rename(rename)
    # Checkpoint leaves under their model names: {model path: (checkpoint path, shape)}.
    renamed: dict[str, tuple[str, tuple[int, ...]]] = {}
    collide: dict[str, list[str]] = {}
    used: dict[str, list[str]] = {src: [] for src in rules}
    for path, shape in saved.items():
        collection, inner = _split(path)
        new, rule = _rename(inner, rules)
        model_path = f"{collection}/{new}"
        if rule is not None:
            used[rule].append(model_path)
        if model_path in renamed:
            collide.setdefault(model_path, [renamed[model_path][0]]).append(path)
        renamed[model_path] = (path, tuple(shape))
    ckpt_inner = {_split(p)[1] for p, _ in renamed.values()}
    unused = [src for src, hits in used.items() if not hits]
    if unused:
        raise ValueError(
            f"init_from.rename: {', '.join(map(repr, unused))} matches no checkpoint path in "
            f"{where} (prefixes match whole '/'-separated names); the checkpoint holds "
            f"{', '.join(_subtrees(ckpt_inner))}"
        )
    if collide:
        pairs = "; ".join(f"{q} <- {', '.join(sorted(ps))}" for q, ps in sorted(collide.items()))
        raise ValueError(
            f"init_from.rename={rename!r}: renamed checkpoint paths collide in {where}: {pairs}"
        )
    outside = [s for s, hits in used.items() if not any(matches(regex, _split(q)[1]) for q in hits)]
    if outside:
        raise ValueError(
            f"init_from.rename: {', '.join(f'{s!r}->{rules[s]!r}' for s in outside)} renames "
            f"nothing into init_from.subtrees={subtrees!r}"
        )
    wanted = {p: tuple(v) for p, v in model.items() if matches(regex, _split(p)[1])}
    if not wanted:
        raise ValueError(f"init_from.subtrees={subtrees!r} matches nothing in the new model")
    offered = {p: v for p, v in renamed.items() if matches(regex, _split(p)[1])}
    if allowed and not any(matches(allowed, _split(p)[1]) for p in {*model, *renamed}):
        raise ValueError(
            f"init_from.allow={allow!r} matches no path of the new model or of the checkpoint"
        )
    problems: list[tuple[str, str]] = []  # (model path, reason)
    for p in sorted(set(wanted) - set(offered)):
        problems.append((p, MISSING))
    for p in sorted(set(offered) - set(wanted)):
        origin = offered[p][0]
        problems.append((p, EXTRA if origin == p else f"{EXTRA} (renamed from {origin})"))
    sources = {}
    for p in sorted(set(wanted) & set(offered)):
        old, new = offered[p][1], wanted[p]
        if old != new:
            problems.append((p, f"{SHAPE} {old}->{new}"))
        else:
            sources[p] = offered[p][0]
    errors = [(p, r) for p, r in problems if not matches(allowed, _split(p)[1])]
    if errors:
        raise ValueError(_error(subtrees, where, errors, set(sources)))
    skipped = sorted([p, r] for p, r in problems if matches(allowed, _split(p)[1]))
    return {"sources": sources, "skipped": skipped}


def _error(subtrees: str, where: str, errors: list[tuple[str, str]], ok: set[str]) -> str:
    lines = [f"cannot transfer init_from.subtrees={subtrees!r} from {where}"]
    for reason in REASONS:
        group = [(p, r) for p, r in errors if r.startswith(reason)]
        if group:
            items = [p + r[len(reason) :] for p, r in group]
            lines.append(f"{reason} ({len(group)}): {', '.join(items)}")
    suggestion = _suggest_allow({_split(p)[1] for p, _ in errors}, {_split(p)[1] for p in ok})
    lines.append(
        "to keep the fresh initialisation of these paths (and ignore checkpoint-only ones), "
        f"name them in init_from.allow, e.g. init_from.allow={suggestion!r}; or fix "
        "init_from.subtrees / init_from.rename"
    )
    return "; ".join(lines)


def _field(config: Any, name: str, default: Any) -> Any:
    """``config.name`` (a ConfigDict, dict or object), or ``default`` when absent or None."""
    if isinstance(config, Mapping) or hasattr(config, "get"):
        value = config.get(name, default)
    else:
        value = getattr(config, name, default)
    return default if value is None else value


def from_config(
    variables: dict[str, Any], init_from: Any, source: str
) -> tuple[dict[str, Any], dict]:
    """``transfer`` from the checkpoint folder ``source`` driven by a stage's ``init_from``
    config: ``subtrees`` and the optional ``rename`` (str, default ''), ``allow`` (str,
    default '') and ``step`` (int, default: latest)."""
    return transfer(
        variables,
        source,
        _field(init_from, "subtrees", ""),
        rename=_field(init_from, "rename", ""),
        allow=_field(init_from, "allow", ""),
        step=_field(init_from, "step", None),
    )


def format_report(report: dict[str, Any]) -> str:
    """A short printable summary of a ``transfer`` report for the run log."""
    renamed, skipped = report.get("renamed", []), report.get("skipped", [])
    where = f" from {report['source']}" if report.get("source") else ""
    which = f", {report['checkpoint']}" if report.get("checkpoint") else ""
    where += f" (step {report['step']}{which})" if report.get("step") is not None else ""
    lines = [
        f"transfer{where}: {len(report['loaded'])} leaves loaded ({len(renamed)} renamed), "
        f"{len(skipped)} skipped, {len(report['kept'])} freshly initialised"
    ]
    lines += [f"  renamed {src} -> {dst}" for src, dst in renamed]
    lines += [f"  skipped {path}: {reason}" for path, reason in skipped]
    return "\n".join(lines)
