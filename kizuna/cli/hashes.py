"""`kizuna hash` and `kizuna hashes import|match`: hash banks of violent extremist content.

`hash` prints the PDQ, MD5 and SHA-256 of media files; `hashes import` turns hash lists,
ThreatExchange/HMA CSV exports and directories of media into marked STIX signals in a collection
(through the node's normal ingest, so they are audited and federate like any object);
`hashes match` looks media or hash lists up in the banks. An input that cannot be used (a corrupt
image, a malformed hash, a hash of the wrong length) is reported on its own line naming the file
and line, and the others are processed (docs/hashes.md).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson

from kizuna.cli.common import (
    CliError,
    FiniteFloat,
    count,
    emit,
    file_and_line,
    json_option,
    node_of,
    quiet_option,
    tlp_level,
)
from kizuna.cli.progress import Progress, progress_wanted
from kizuna.core.errors import KizunaError, NotFound
from kizuna.core.principal import NODE_ADMIN
from kizuna.hashes.hashlists import KINDS, Entry, Note, Rejected, looks_like_hash_list, read_hash_list
from kizuna.hashes.opinions import record_opinion
from kizuna.hashes.signals import (
    DEFAULT_THRESHOLD,
    MD5,
    PDQ,
    SHA256,
    VERDICTS,
    VPDQ,
    VPDQ_QUERY_PERCENT,
    VPDQ_TARGET_PERCENT,
    SignalError,
    check_label,
    extension_definition,
    kizuna_identity,
    make_signal,
    next_version,
)
from kizuna.policy.tlp import TLP2_IDS, TlpLevel

# numba, numpy, Pillow and pdqhash are imported by the commands that use them, not at start-up:
# they would add a second to every other `kizuna` command.

# A missing path is not refused here: it is one unusable input, reported and skipped like a corrupt file, so that
# one typo does not stop the run over every other input.
_paths = click.argument("inputs", nargs=-1, required=True,
                        type=click.Path(file_okay=True, dir_okay=True, path_type=Path))
_kind = click.option("--kind", type=click.Choice(KINDS), default="auto", show_default=True,
                     help="Type of bare 64-hex-digit hashes in lists (auto reads them as PDQ).")


def _collection_named(option: str, ref: str) -> str:
    """A collection option's value; an empty one is a usage error, as elsewhere, not "no collection ''"."""
    if not ref.strip():
        raise CliError(f"{option} is empty: give a collection id or alias", code="usage")
    return ref


def _report(command: str, where: str, reason: str) -> None:
    """One input that could not be used: one line on stderr, and the run goes on."""
    sys.stderr.write(f"kizuna {command}: {' '.join(reason.split())}: {where}\n")


class _Unusable:
    """Inputs that could not be used, reported as they come once something succeeded.

    Until then they are held: when nothing at all succeeds, the run fails with one line (or one JSON
    error object) naming the first of them, rather than a report and a summary.
    """

    def __init__(self, command: str, as_json: bool) -> None:
        self.command, self.as_json = command, as_json
        self.pending: list[tuple[str, str]] = []
        self.count = 0
        self.succeeded = False

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        self.pending.append((where, reason))
        if self.succeeded:
            self.flush()

    def success(self) -> None:
        self.succeeded = True
        self.flush()

    def flush(self) -> None:
        for where, reason in self.pending:
            if self.as_json:
                click.echo(orjson.dumps({"input": where, "error": reason}).decode())
            else:
                _report(self.command, where, reason)
        self.pending = []

    def exit_if_any(self, total: int) -> None:
        """After the run's report: exit 1 when some inputs could not be used. The rest was used and reported;
        the run still failed for these (listed above) and says so in its exit status, as `kizuna import`
        and `kizuna match --yara` do."""
        if self.count:
            if not self.as_json:
                click.echo(f"kizuna {self.command}: {self.count} of {total} inputs could not be used (listed above)",
                           err=True)
            raise click.exceptions.Exit(1)

    def finish(self, total: int) -> None:
        if self.succeeded or not total or not self.pending:
            return
        _none_usable(self.command, self.pending, f"none of the {total} inputs could be used", "", self.as_json)


def _none_usable(command: str, problems: list[tuple[str, str]], summary: str, lead: str, as_json: bool) -> NoReturn:
    """Nothing was usable: one failure line (or one JSON error object) naming the bad input, ``lead`` before its
    reason. Several are each named on a line of their own first (``summary`` then ends the run): a person fixes
    them all at once, not one run at a time."""
    where, reason = problems[0]
    if len(problems) > 1 and not as_json:
        for each in problems:
            _report(command, *each)
        raise CliError(f"{summary} (listed above)", code="input")
    if len(problems) > 1:
        reason = f"{summary}; the first: {reason}"
    reason = lead + reason
    file, line = file_and_line(where)
    raise CliError(reason, code="input", file=file, line=line)


def _files(inputs: tuple[Path, ...]) -> list[Path]:
    from kizuna.hashes.hashing import media_files

    files = [file for path in inputs for file in media_files(path)]
    if not files:
        raise CliError("no files to read", code="input", file=str(inputs[0]))
    return files


@click.command("hash")
@_paths
@json_option
def hash_command(inputs: tuple[Path, ...], as_json: bool) -> None:
    """Print the PDQ hash (with its quality), MD5 and SHA-256 of image files or directories of them,
    and the vPDQ frame hashes of videos (with the optional video extra).

    A PDQ quality below 50 is shown but flagged: such a hash is not used for matching. A file that
    is neither an image nor a video gets only its MD5 and SHA-256.
    """
    from kizuna.hashes.hashing import HashingError, hash_file

    unusable = _Unusable("hash", as_json)
    files = _files(inputs)
    for file in files:
        try:
            found = hash_file(file)
        except HashingError as exc:
            unusable.add(str(file), str(exc))
            continue
        unusable.success()
        record: dict[str, Any] = {"input": str(file), "pdq": found.pdq, "quality": found.quality,
                                  "pdq_usable": found.pdq_usable, "md5": found.md5, "sha256": found.sha256}
        pdq = f"pdq {found.pdq} quality {found.quality}" + ("" if found.pdq_usable else " (too low: not used)") \
            if found.pdq else "pdq - (not an image)"
        if found.is_video:
            record["vpdq"], pdq = _video_lines(found.vpdq)
        emit(as_json, record, f"{file}\n  {pdq}\n  md5 {found.md5}\n  sha256 {found.sha256}")
    unusable.finish(len(files))
    unusable.exit_if_any(len(files))


def _video_lines(frames: str | None) -> tuple[list[dict[str, Any]] | None, str]:
    """A video's vPDQ frames for --json, and the lines that show them."""
    from kizuna.hashes.signals import MIN_QUALITY, parse_frames

    if frames is None:
        return None, "vpdq - (a video: install the optional video extra, pip install 'kizuna[video]')"
    parsed = parse_frames(frames)
    usable = sum(f.quality >= MIN_QUALITY for f in parsed)
    shown = "".join(f"\n    {f.timestamp:9.3f}s  {f.hash}  quality {f.quality}" for f in parsed)
    return ([{"frame": f.number, "quality": f.quality, "hash": f.hash, "timestamp": f.timestamp} for f in parsed],
            f"vpdq {len(parsed)} frames ({usable} of quality 50 or more){shown}")


def _entries(files: list[Path], kind: str, progress: Progress) -> Iterator[tuple[str, Entry | Rejected]]:
    """(file, entry or rejection) for every hash in the lists and every usable hash of the media."""
    from kizuna.hashes.hashing import HashingError, hash_file

    for file in files:
        progress.object_done()
        try:
            head = file.read_bytes()[:4096]
        except OSError as exc:
            yield str(file), Rejected(0, exc.strerror or str(exc))
            continue
        if looks_like_hash_list(head, file.name):
            for item in read_hash_list(file.read_text(encoding="utf-8", errors="replace"), kind):
                yield str(file), item
            continue
        try:
            found = hash_file(file)
        except HashingError as exc:
            yield str(file), Rejected(0, str(exc))
            continue
        if found.vpdq is not None:
            yield str(file), Entry(0, VPDQ, found.vpdq)
        elif found.is_video:
            yield str(file), Note(0, "a video: its vPDQ needs the optional video extra; only exact hashes "
                                             "banked")
        if found.pdq is not None and found.pdq_usable:
            yield str(file), Entry(0, PDQ, found.pdq, found.quality)
        elif found.pdq is not None:
            yield str(file), Note(0, f"PDQ quality {found.quality} is below 50: only exact hashes banked")
        yield str(file), Entry(0, MD5, found.md5)
        yield str(file), Entry(0, SHA256, found.sha256)


@click.group("hashes")
def hashes_group() -> None:
    """Hash banks: import PDQ / MD5 / SHA-256 signals and match media or hashes against them."""


@hashes_group.command("import")
@_paths
@click.option("--collection", "-c", required=True, help="The bank: collection id or alias to add the signals to.")
@click.option("--label", "labels", multiple=True,
              help="Content category for every signal, e.g. terrorist-content/imminent-credible-threat (repeatable).")
@click.option("--tlp", type=tlp_level, default=None,
              help="TLP 2.0 marking for every signal.")
@_kind
@quiet_option
@json_option
@click.pass_context
def import_command(ctx: click.Context, inputs: tuple[Path, ...], collection: str, labels: tuple[str, ...],
                   tlp: str | None, kind: str, quiet: bool, as_json: bool) -> None:
    """Add signals to a bank from hash lists (text or CSV, ThreatExchange/HMA exports) or media files.

    Media are hashed on the way (PDQ when its quality is at least 50, plus MD5 and SHA-256). A bad
    line or file is reported on its own line with its file and line, and the rest is imported.
    """
    checked = []
    for label in labels:  # taken in any case, and named as given when it is no taxonomy path at all
        try:
            checked.append(check_label(label.strip().lower()))
        except SignalError:
            raise CliError(f"--label {label!r} is not a taxonomy path like 'terrorist-content/…' (lower-case "
                           "words of a-z, 0-9 and hyphens, joined by '/')", code="usage") from None
    node = node_of(ctx)
    target = node.find_collection(_collection_named("--collection", collection))
    files = _files(inputs)
    producer = node.identity().get("id")
    level = TlpLevel.from_token(tlp) if tlp else None
    markings = [TLP2_IDS[level]] if level is not None else []
    signals: dict[str, dict[str, Any]] = {}
    rejected: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    with Progress("hash and read", total=len(files), unit="files", enabled=progress_wanted(as_json, quiet)) as bar:
        for file, item in _entries(files, kind, bar):
            where = f"{file}:{item.line}" if item.line else file
            if isinstance(item, Note):
                notes.append({"where": where, "reason": item.reason})
                continue
            if isinstance(item, Rejected):
                rejected.append({"where": where, "reason": item.reason})
                continue
            signal = make_signal(item.hash_type, item.hash, producer=producer, quality=item.quality,
                                 labels=[*checked, *item.labels], markings=markings)
            signals[signal["id"]] = signal
    if not signals:
        problems = [(r["where"], r["reason"]) for r in rejected or notes] or [(str(inputs[0]), "no hashes found")]
        _none_usable("hashes import", problems, f"nothing imported: {count(len(problems), 'input')} rejected",
                     "" if len(problems) > 1 else "nothing imported: ", as_json)
    node.import_objects(target, [kizuna_identity(), extension_definition()])  # what every signal names
    from kizuna.hashes.banks import Banks

    # A signal the bank holds already gets a next version only when this import changes it (labels, TLP).
    held = Banks(node).newest_objects(target, set(signals))
    versions = [version for sid, signal in signals.items()
                if (version := next_version(held.get(sid), signal)) is not None]
    report = node.import_objects(target, versions)
    failures = [{"id": f["id"], "message": f["message"]} for f in report.failures]
    stored = report.success_count - report.duplicate_count
    unchanged = len(signals) - len(versions)
    result = {"collection": target.alias or target.id, "signals": len(signals), "stored": stored,
              "unchanged": unchanged, "failed": failures, "rejected": rejected, "notes": notes}
    if not as_json:
        for note in notes:  # what was banked only in part: said, and no failure
            click.echo(f"  note: {note['reason']}: {note['where']}", err=True)
        for problem in rejected:
            _report("hashes import", problem["where"], problem["reason"])
    emit(as_json, result, f"{count(len(signals), 'signal')} into {result['collection']} "
                          f"({stored} new or changed, {unchanged} banked already as they are), "
                          f"{count(len(rejected), 'input')} rejected, {len(failures)} refused")
    if rejected or failures:
        if not as_json:
            click.echo(f"kizuna hashes import: {count(len(rejected), 'input')} rejected, "
                       f"{count(len(failures), 'signal')} refused "
                       "(listed above)", err=True)
        raise click.exceptions.Exit(1)


@hashes_group.command("match")
@_paths
@click.option("--collection", "-c", "collections", multiple=True,
              help="Bank to match against (id or alias; repeatable). Default: every collection.")
@click.option("--threshold", type=click.IntRange(0, 255), default=DEFAULT_THRESHOLD, show_default=True,
              help="Largest PDQ Hamming distance that counts as a match (for videos, between two frames).")
@click.option("--query-match", "query_match", type=FiniteFloat(0, 100), default=VPDQ_QUERY_PERCENT,
              show_default=True,
              help="vPDQ: percentage of the video's frames that must match frames of a banked video.")
@click.option("--target-match", "target_match", type=FiniteFloat(0, 100), default=VPDQ_TARGET_PERCENT,
              show_default=True,
              help="vPDQ: percentage of the banked video's frames that must match frames of the video.")
@click.option("--across-types", "across", is_flag=True,
              help="Also match images against the frames of banked videos, and a video's frames against "
              "banked images (each such match names the frame).")
@click.option("--sightings-to", "sightings_to", default=None,
              help="Store a sighting of every matched signal in this collection (federation carries it back).")
@_kind
@quiet_option
@json_option
@click.pass_context
def match_command(ctx: click.Context, inputs: tuple[Path, ...], collections: tuple[str, ...], threshold: int,
                  query_match: float, target_match: float, across: bool, sightings_to: str | None, kind: str,
                  quiet: bool, as_json: bool) -> None:
    """Look media files, directories or hash lists up in the banks; print every match with its distance.

    A video (or a vPDQ hash file) matches a banked video when at least --query-match percent of its
    frames are within --threshold of a frame of the banked one, and --target-match percent the other
    way round. With --json: one JSON line per input, {"input", "hash", "matches": [{"hash",
    "distance", "signal", "bank", "labels", "producer"}]}, or {"input", "error"} for an input that
    cannot be used.
    """
    from kizuna.hashes.banks import Banks
    from kizuna.hashes.matching import MatchRun, queries_from_path
    from kizuna.hashes.video import VideoRule

    node = node_of(ctx)
    banks = [node.find_collection(_collection_named("--collection", ref)) for ref in collections] \
        or node.store.list_collections()
    target = node.find_collection(_collection_named("--sightings-to", sightings_to)) if sightings_to is not None \
        else None
    _files(inputs)
    run = MatchRun(Banks(node), NODE_ADMIN, banks, threshold, node.acting_identity(NODE_ADMIN),
                   VideoRule(query_match, target_match, across))
    queries = (query for path in inputs for query in queries_from_path(path, kind))
    unusable = _Unusable("hashes match", as_json)
    with Progress("match", total=None, unit="inputs", noun="inputs", enabled=progress_wanted(as_json, quiet)) as bar:
        for result in run.results(queries):
            bar.object_done()
            _show_match(result, unusable, as_json)
    sightings = run.sightings()
    if target is not None and sightings:
        node.store_sightings(NODE_ADMIN, target, sightings, run.shares())
    unusable.finish(run.inputs)
    if not as_json:
        click.echo(f"{run.inputs} inputs, {run.matched} matched, {run.errors} unusable; {len(sightings)} sightings"
                   + (f" stored in {target.alias or target.id}" if target is not None and sightings
                      else " (not stored: --sightings-to COLLECTION stores them)" if sightings else ""),
                   err=True)
    unusable.exit_if_any(run.inputs)


def _show_match(result: dict[str, Any], unusable: _Unusable, as_json: bool) -> None:
    """One input's outcome: its matches on standard output, or its error kept for the summary."""
    if "error" in result:
        unusable.add(result["input"], result["error"])
        return
    unusable.success()
    if as_json:
        click.echo(orjson.dumps(result).decode())
        return
    click.echo(f"{result['input']}: {len(result['matches'])} match(es) for {result['hash']}")
    for m in result["matches"]:
        video = f"  frames {m['query_match_percent']:g}% / {m['target_match_percent']:g}%" \
            if "query_match_percent" in m else ""
        if "frame" in m:  # across types: which frame, of the banked video or of the input
            frame = m["frame"]
            video = f"  frame {frame['number']} ({frame['timestamp']:g} s) of the {frame['of']}"
        labels = ", ".join(m["labels"])
        click.echo(f"  distance {m['distance']:>3}{video}  {m['bank']}  {m['signal']}  {labels}")


@hashes_group.command("opinion")
@click.argument("signal_id")
@click.option("--verdict", type=click.Choice(list(VERDICTS)), required=True,
              help="Whether the signal's match was right (true-positive), wrong (false-positive) or disputed.")
@click.option("--collection", "-c", required=True,
              help="The bank holding the signal (id or alias); the opinion is stored there.")
@click.option("--comment", default=None, help="A short explanation kept with the verdict.")
@json_option
@click.pass_context
def opinion_command(ctx: click.Context, signal_id: str, verdict: str, collection: str, comment: str | None,
                    as_json: bool) -> None:
    """Record a verdict on a signal as a STIX opinion, under the signal's markings.

    Federation carries the opinion back to the signal's producer like any object of the bank.
    """
    node = node_of(ctx)
    target = node.find_collection(_collection_named("--collection", collection))
    try:
        done = record_opinion(node, NODE_ADMIN, target, signal_id, verdict, comment)
    except NotFound:
        raise CliError(f"no hash signal {signal_id[:100]!r} in {collection}", code="not-found") from None
    except KizunaError as exc:
        raise CliError(str(exc), code="invalid") from None
    emit(as_json, {"id": done.opinion["id"], "opinion": done.opinion["opinion"], "signal": signal_id},
         f"opinion {done.opinion['id']} ({verdict}) on {signal_id}")


def register(cli: click.Group) -> None:
    cli.add_command(hash_command)
    cli.add_command(hashes_group)
