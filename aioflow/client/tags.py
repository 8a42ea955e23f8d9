"""Run tags: validation, atomic mutation, and how the `aioflow tag` command prints them.

Every run carries system tags (`user:<name>`, `runtime:dev`, `python_version:...`,
`aioflow_version:...`), which nobody can remove, and user tags: those of `--tag`, and those
added later with `Run.add_tag(...)` or `aioflow tag add`. The rules are Metaflow's:

- a tag is a non-empty string of at most 500 characters;
- a run carries at most 50 user tags (a set that is already larger may shrink, not grow);
- adding a tag that is already a system tag is a silent no-op;
- removing a system tag is an error, removing a tag the run does not carry is a no-op;
- `replace` removes first, then adds, in one transaction.

Mutations are one SQLite transaction each (see `MetadataDB.update_run_tags`), so concurrent
taggers, in this process or another, never lose each other's changes, and a run still being
written by its own process keeps the tags given to it meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..exceptions import TaggingError
from ..store import Store

#: The most user tags a run may carry.
MAX_USER_TAGS = 50
#: The longest a tag may be, in characters.
MAX_TAG_LENGTH = 500


def validate_tag(tag: object) -> str:
    """Return `tag` if it is a valid tag; raise TaggingError saying why it is not."""
    if isinstance(tag, bytes):
        try:
            tag = tag.decode("utf-8")
        except UnicodeDecodeError:
            raise TaggingError("Tags must be UTF-8 decodable") from None
    if not isinstance(tag, str):
        raise TaggingError(f"Tags must be some kind of string, got {type(tag).__name__}")
    if not tag.strip():
        raise TaggingError(f"Tags must not be empty or blank (got {tag!r})")
    if len(tag) > MAX_TAG_LENGTH:
        raise TaggingError(
            f"Tag is too long {len(tag)} > {MAX_TAG_LENGTH}: {tag[:40]!r}... Tags are at most "
            f"{MAX_TAG_LENGTH} characters."
        )
    try:
        tag.encode("utf-8")
    except UnicodeEncodeError:
        raise TaggingError(f"Tags must be UTF-8 encodable: {tag!r}") from None
    return tag


def validate_tags(tags: Iterable[object], existing: Iterable[str] | None = None) -> list[str]:
    """Validate each tag and the size of the set; return the tags as strings, in order.

    A set larger than MAX_USER_TAGS is refused unless `existing` (the tags a run carries now)
    is at least as large: a run that somehow carries too many may still shed some.
    """
    checked = [validate_tag(tag) for tag in tags]
    size = len(set(checked))
    if size > MAX_USER_TAGS and (existing is None or len(set(existing)) < size):
        raise TaggingError(
            f"Cannot increase size of tag set beyond {MAX_USER_TAGS}: a run carries at most "
            f"{MAX_USER_TAGS} user tags (this would make {size})."
        )
    return checked


def _tag_list(tags: Iterable[str] | str, what: str) -> list[str]:
    if isinstance(tags, (str, bytes)):
        raise TaggingError(f"{what} may not be a string; pass a list of tags")
    try:
        return list(tags)
    except TypeError:
        raise TaggingError(f"{what} must be iterable") from None


def mutate_user_tags(
    store: Store,
    flow: str,
    run_id: int,
    tags_to_remove: Iterable[str] = (),
    tags_to_add: Iterable[str] = (),
) -> frozenset[str]:
    """Remove, then add user tags of run `flow/run_id`, atomically; return its user tags.

    Raises TaggingError when a tag is invalid, a system tag would be removed, nothing is asked,
    or the run would carry more than MAX_USER_TAGS user tags; nothing changes then.
    """
    remove = [validate_tag(t) for t in _tag_list(tags_to_remove, "tags_to_remove")]
    add = [validate_tag(t) for t in _tag_list(tags_to_add, "tags_to_add")]
    if not remove and not add:
        raise TaggingError("Must add or remove at least one tag")

    def mutate(user: list[str], system: list[str]) -> list[str]:
        system_set = set(system)
        protected = sorted(set(remove) & system_set)
        if protected:
            raise TaggingError(
                f"Cannot remove a tag that is an existing system tag ({protected}): system "
                "tags are attached by aioflow and stay with the run."
            )
        dropped = set(remove)
        result = [t for t in user if t not in dropped]
        for tag in add:
            if tag not in system_set and tag not in result:
                result.append(tag)
        if set(result) != set(user):
            validate_tags(result, existing=user)
        return result

    final = store.db.update_run_tags(flow, run_id, mutate)
    if final is None:
        raise TaggingError(f"Run not found ({flow}/{run_id}): there is no such run to tag.")
    return frozenset(final)


def displayable(text: str) -> str:
    """`text` safe to print on a terminal: every character that is not printable (newlines,
    escape sequences, bidi overrides, ...) is written as its Python escape (`\\n`, `\\x1b`).

    Tags (and other strings users store) are printed in tables: raw, a newline or an escape
    sequence in one could fake lines of output or rewrite the screen.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def format_run_tags(
    pathspec: str, user_tags: Iterable[str], system_tags: Iterable[str], *, hide_system: bool
) -> list[str]:
    """The lines `aioflow tag list` prints for one run: user tags, then system tags (each
    made `displayable`)."""
    user = [displayable(tag) for tag in sorted(user_tags)]
    lines = [displayable(pathspec), f"    user tags:   {', '.join(user) if user else '(none)'}"]
    if not hide_system:
        system = [displayable(tag) for tag in sorted(system_tags)]
        lines.append(f"    system tags: {', '.join(system)}")
    return lines


def format_tag_table(runs: Sequence[tuple[str, Iterable[str]]]) -> list[str]:
    """Runs grouped by user tag (`aioflow tag list FLOW --group-by-tag`): tag, then run ids."""
    by_tag: dict[str, list[str]] = {}
    for pathspec, tags in runs:
        for tag in tags:
            by_tag.setdefault(tag, []).append(pathspec)
    if not by_tag:
        return ["(no user tags)"]
    shown = {tag: displayable(tag) for tag in by_tag}
    width = max(map(len, shown.values()))
    return [
        f"{shown[tag]:<{width}}  {displayable(', '.join(by_tag[tag]))}" for tag in sorted(by_tag)
    ]


__all__ = [
    "MAX_TAG_LENGTH",
    "MAX_USER_TAGS",
    "displayable",
    "format_run_tags",
    "format_tag_table",
    "mutate_user_tags",
    "validate_tag",
    "validate_tags",
]
