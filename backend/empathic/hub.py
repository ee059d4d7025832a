"""Finding model weights: an explicit folder, a folder of folders, or the Hugging Face hub cache.

The hub cache and its environment variables (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``,
``HF_TOKEN``) work as in every Hugging Face tool because resolution goes through huggingface_hub.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .checksums import verify_files
from .registry import HeadSet, RepoRef, checksums_for

LOCAL_REVISION = "local"


class MissingWeightsError(RuntimeError):
    """Weights are not on this machine and cannot be downloaded now."""


@dataclass(frozen=True)
class WeightSources:
    """Where to look for weights before (or instead of) the hub.

    local_dirs: one folder per repository id, used as is (a copy of the repository's files).
    weights_root: a folder holding ``<org>/<name>`` sub-folders, as ``empathic models download --to``
        writes them.
    cache_dir: the hub cache; None means huggingface_hub's own default (``HF_HUB_CACHE``...).
    offline: never download; None means huggingface_hub's ``HF_HUB_OFFLINE`` setting.
    verify_checksums: hash the files whose SHA256 the registry knows and refuse any that differs.
    """

    local_dirs: Mapping[str, Path] = field(default_factory=dict)
    weights_root: Path | None = None
    cache_dir: Path | None = None
    offline: bool | None = None
    token: str | None = None
    verify_checksums: bool = False


@dataclass(frozen=True)
class ResolvedRepo:
    ref: RepoRef
    path: Path
    commit: str  # the commit hash of the snapshot, or "local" for a plain folder

    def info(self) -> dict[str, str]:
        return {"repo": self.ref.repo_id, "revision": self.commit, "requested_revision": self.ref.revision}


def _is_offline(sources: WeightSources) -> bool:
    if sources.offline is not None:
        return sources.offline
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _local_folder(ref: RepoRef, sources: WeightSources) -> Path | None:
    explicit = sources.local_dirs.get(ref.repo_id)
    if explicit is not None:
        if not Path(explicit).is_dir():
            raise MissingWeightsError(f"model folder for {ref.repo_id} does not exist: {explicit}")
        return Path(explicit)
    if sources.weights_root is not None:
        candidate = Path(sources.weights_root) / ref.repo_id
        if candidate.is_dir():
            return candidate
    return None


def _from_cache(ref: RepoRef, patterns: Iterable[str], sources: WeightSources) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(
            ref.repo_id, revision=ref.revision, allow_patterns=list(patterns),
            cache_dir=sources.cache_dir, local_files_only=True,
        ))
    except (LocalEntryNotFoundError, FileNotFoundError):
        return None


def _download(ref: RepoRef, patterns: Iterable[str], sources: WeightSources,
              local_dir: Path | None = None) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(
        ref.repo_id, revision=ref.revision, allow_patterns=list(patterns),
        cache_dir=sources.cache_dir, token=sources.token, local_dir=local_dir,
    ))


def _commit_of(snapshot: Path) -> str:
    # Hub snapshots live in .../snapshots/<commit hash>/
    return snapshot.name if snapshot.parent.name == "snapshots" else LOCAL_REVISION


@dataclass(frozen=True)
class ModelNeed:
    """One repository a run needs: the files to fetch, those that must then be there, and the
    ``empathic models download`` arguments that fetch it."""

    ref: RepoRef
    patterns: tuple[str, ...]
    required_files: tuple[str, ...] = ()
    download_args: tuple[str, ...] = ()
    hint: str | None = None  # what else the user must do (a gated repository: accept its conditions)
    # Revisions tried in order where ``ref``'s revision lacks ``required_files`` (registry.HeadSet).
    fallback_revisions: tuple[str, ...] = ()
    checksums: tuple[tuple[str, str], ...] = ()  # (file, published SHA256), checked on request
    checksum_source: str = ""  # the pages the checksums were read from, for the error message

    def candidates(self) -> tuple[RepoRef, ...]:
        return (self.ref, *(RepoRef(self.ref.repo_id, r) for r in self.fallback_revisions if r != self.ref.revision))


def head_need(spec: HeadSet, registry_revisions: Iterable[str], fetch: tuple[str, ...]) -> ModelNeed:
    """The need for a model's head files: all of them required, its fallback revisions, and the
    published checksums where ``spec`` asks for the registry's own revision."""
    files = spec.download_patterns()
    published = checksums_for(spec.repo, registry_revisions)
    return ModelNeed(spec.repo, files, files, fetch, fallback_revisions=spec.fallback_revisions,
                     checksums=tuple(sorted(published.sha256.items())) if published else (),
                     checksum_source=published.source if published else "")


def download_command(needs: Iterable[ModelNeed]) -> str:
    """The one ``empathic models download`` command that fetches all of ``needs``."""
    args: list[tuple[str, ...]] = []
    for need in needs:
        if need.download_args and need.download_args not in args:
            args.append(need.download_args)
    return " ".join(["empathic models download", *(" ".join(a) for a in args)])


def _resolve_one(ref: RepoRef, patterns: tuple[str, ...], sources: WeightSources,
                 offline: bool) -> tuple[ResolvedRepo | None, str]:
    """(the resolved repository, "") or (None, why it is missing)."""
    folder = _local_folder(ref, sources)
    if folder is not None:
        return ResolvedRepo(ref, folder, LOCAL_REVISION), ""
    snapshot = _from_cache(ref, patterns, sources)
    if snapshot is None and not offline:
        try:
            snapshot = _download(ref, patterns, sources)
        except Exception as exc:  # network, auth, unknown revision: all end the same way for the user
            return None, f"download failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    if snapshot is None:
        return None, "not in the local hub cache"
    return ResolvedRepo(ref, snapshot, _commit_of(snapshot)), ""


def _resolve_all(wanted: Mapping[RepoRef, tuple[str, ...]], sources: WeightSources, allow_download: bool
                 ) -> tuple[dict[RepoRef, ResolvedRepo], list[tuple[RepoRef, str]]]:
    """(the repositories found, (ref, why) for each one missing)."""
    offline = _is_offline(sources) or not allow_download
    resolved: dict[RepoRef, ResolvedRepo] = {}
    missing: list[tuple[RepoRef, str]] = []
    for ref, patterns in wanted.items():
        found, why = _resolve_one(ref, patterns, sources, offline)
        if found is None:
            missing.append((ref, why))
        else:
            resolved[ref] = found
    return resolved, missing


def _missing_error(missing: list[tuple[RepoRef, str]], sources: WeightSources, command: str,
                   hints: Iterable[str] = ()) -> MissingWeightsError:
    listed = "; ".join(f"{ref.repo_id} (revision {ref.revision}: {why})" for ref, why in missing)
    mode = " with HF_HUB_OFFLINE set" if _is_offline(sources) else ""
    extra = "".join(f" {hint}" for hint in dict.fromkeys(hints))
    return MissingWeightsError(
        f"model weights missing{mode}: {listed}. Fetch them on a machine with network access with "
        f"`{command}` (then copy the hub cache, or pass --weights-dir).{extra}"
    )


def resolve_repos(wanted: Mapping[RepoRef, Iterable[str]], sources: WeightSources,
                  fetch_command: str, allow_download: bool = True) -> dict[RepoRef, ResolvedRepo]:
    """Resolve every repository, or raise one error naming all that are missing and how to fetch them."""
    resolved, missing = _resolve_all({ref: tuple(p) for ref, p in wanted.items()}, sources, allow_download)
    if missing:
        raise _missing_error(missing, sources, fetch_command)
    return resolved


def _absent(repo: ResolvedRepo, file_names: Iterable[str]) -> list[str]:
    return [name for name in file_names if not (repo.path / name).is_file()]


def _shown(names: list[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _merged(needs: tuple[ModelNeed, ...]) -> dict[RepoRef, ModelNeed]:
    """One need per repository: their patterns, required files and checksums together."""
    merged: dict[RepoRef, ModelNeed] = {}
    for need in needs:
        known = merged.get(need.ref)
        if known is None:
            merged[need.ref] = need
            continue
        merged[need.ref] = ModelNeed(
            need.ref, tuple(dict.fromkeys(known.patterns + need.patterns)),
            tuple(dict.fromkeys(known.required_files + need.required_files)), known.download_args, known.hint,
            known.fallback_revisions or need.fallback_revisions,
            tuple(dict.fromkeys(known.checksums + need.checksums)), known.checksum_source or need.checksum_source)
    return merged


def _resolve_need(need: ModelNeed, sources: WeightSources, offline: bool) -> tuple[ResolvedRepo | None, str]:
    """The first of the need's revisions that holds every required file, or (None, why not)."""
    reasons = []
    for ref in need.candidates():
        repo, why = _resolve_one(ref, need.patterns, sources, offline)
        if repo is not None:
            absent = _absent(repo, need.required_files)
            if not absent:
                return repo, ""
            why = f"{repo.path} lacks {len(absent)} file(s): {_shown(absent)}"
        reasons.append(why if ref == need.ref else f"at {ref.revision}: {why}")
    return None, "; ".join(reasons)


def _verify(repo: ResolvedRepo, need: ModelNeed) -> None:
    if need.checksums:
        verify_files(repo.path, dict(need.checksums), repo.ref.repo_id, need.checksum_source)


def resolve_needs(needs: Iterable[ModelNeed], sources: WeightSources,
                  allow_download: bool = True) -> dict[RepoRef, ResolvedRepo]:
    """Resolve everything a run needs before any work starts, or raise ONE error that names every
    missing or incomplete repository and the one command that fetches them all.

    The result is keyed by each need's own ref; the ResolvedRepo says which revision served it (a
    fallback revision where the first lacked the files). With ``sources.verify_checksums`` the
    files whose SHA256 is published are hashed, and a mismatch raises WeightChecksumError."""
    needs = tuple(needs)
    offline = _is_offline(sources) or not allow_download
    resolved: dict[RepoRef, ResolvedRepo] = {}
    missing: list[tuple[RepoRef, str]] = []
    for ref, need in _merged(needs).items():
        repo, why = _resolve_need(need, sources, offline)
        if repo is None:
            missing.append((ref, why))
        else:
            resolved[ref] = repo
    if missing:
        failed = {ref for ref, _ in missing}
        raise _missing_error(missing, sources, download_command(n for n in needs if n.ref in failed),
                             [n.hint for n in needs if n.ref in failed and n.hint])
    if sources.verify_checksums:
        for ref, need in _merged(needs).items():
            _verify(resolved[ref], need)
    return resolved


def download_needs(needs: Iterable[ModelNeed], sources: WeightSources, to: Path | None = None
                   ) -> list[ResolvedRepo]:
    """Fetch every need into the hub cache (or into ``to/<org>/<name>``), with progress bars: its
    revision, else the first fallback revision that holds the required files. With
    ``sources.verify_checksums`` the fetched files are checked against their published SHA256."""
    fetched = []
    for ref, need in _merged(tuple(needs)).items():
        local_dir = Path(to) / ref.repo_id if to is not None else None
        reasons = []
        for candidate in need.candidates():
            try:
                path = _download(candidate, need.patterns, sources, local_dir=local_dir)
            except Exception as exc:  # network, auth, unknown revision: the next revision may still serve
                if len(need.candidates()) == 1:
                    raise
                why = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                reasons.append(f"{candidate.revision}: {type(exc).__name__}: {why}")
                continue
            repo = ResolvedRepo(candidate, path, _commit_of(path))
            absent = _absent(repo, need.required_files)
            if not absent:
                break
            reasons.append(f"{candidate.revision} lacks {_shown(absent)}")
        else:
            raise MissingWeightsError(f"{ref.repo_id}: no revision holds the model's files ({'; '.join(reasons)})")
        if sources.verify_checksums:
            _verify(repo, need)
        fetched.append(repo)
    return fetched


def require_files(repo: ResolvedRepo, file_names: Iterable[str], fetch_command: str) -> None:
    """A snapshot folder can exist with files missing (an interrupted or filtered download)."""
    absent = _absent(repo, file_names)
    if absent:
        raise MissingWeightsError(
            f"{repo.ref.repo_id} at {repo.path} lacks {len(absent)} file(s): {_shown(absent, 5)}. "
            f"Fetch them with `{fetch_command}`"
        )
