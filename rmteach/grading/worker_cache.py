r"""What a grading worker sets up once and reuses for every submission it grades.

nbgrader opens its gradebook some ten times per submission (the ``Autograde``
converter, ``OverwriteKernelspec``, ``SaveAutoGrades``, ``AssignLatePenalties``
...), and each :class:`nbgrader.api.Gradebook` builds a new SQLAlchemy engine,
lists the database's tables and runs ``create_all`` (one query per table) before
its first real query.  It also checks every cell's nbgrader metadata with
``jsonschema.validate``, which checks the *schema itself* again on every call.

:func:`install` (called once by :mod:`rmteach.grading.worker`, never by plain
``nbgrader``) makes both happen once per worker process:

* one engine per database URL, built and checked (tables present, ``create_all``)
  the first time; every later ``Gradebook(url)`` gets a fresh session on it and
  runs the same ``check_course`` and the same reads and writes.  ``close()``
  ends the session and returns its connection to the pool instead of disposing
  the engine.
* one ``jsonschema`` validator per schema: the same checks, the same first
  (``best_match``) error raised.

Neither changes what is written to the gradebook: ``tests/test_parallel_grading.py``
and ``bench/grading.py`` compare the result with serial ``nbgrader autograde`` row
for row.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_engines: dict[str, Any] = {}
_validators: dict[int, tuple[Any, Any]] = {}
_installed = False


def shared_engine(db_url: str):
    """The worker's one SQLAlchemy engine for ``db_url``; built, and its tables made, on first use."""
    from nbgrader.api import Base
    from sqlalchemy import create_engine, inspect, text

    with _lock:
        engine = _engines.get(db_url)
        if engine is not None:
            return engine, True
        engine = create_engine(db_url, echo=False, future=True)
        fresh = len(inspect(engine).get_table_names()) == 0
        Base.metadata.create_all(bind=engine)
        if fresh:  # as nbgrader does for a new gradebook: record its schema version
            from nbgrader.api import get_alembic_version

            with engine.begin() as con:
                con.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);"))
                con.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                            {"v": get_alembic_version()})
        _engines[db_url] = engine
        return engine, False


def _gradebook_init(self, db_url: str, course_id: str = "default_course", authenticator=None) -> None:
    from sqlalchemy.orm import scoped_session, sessionmaker

    self.engine, _ = shared_engine(db_url)
    self.db = scoped_session(sessionmaker(autoflush=True, bind=self.engine, future=True))
    self.check_course(course_id=course_id)
    self.course_id = course_id
    self.authenticator = authenticator


def _gradebook_close(self) -> None:
    self.db.remove()  # the session ends; the engine (and its pool) stays for the next submission


def _cached_validate(instance: Any, schema: Any, *args: Any, **kwargs: Any) -> None:
    """``jsonschema.validate(instance, schema)``, with the schema checked and its validator built once."""
    import jsonschema

    if args or kwargs:
        return _original_validate(instance, schema, *args, **kwargs)
    key = id(schema)
    entry = _validators.get(key)
    if entry is None or entry[0] is not schema:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        entry = (schema, cls(schema))
        _validators[key] = entry
    error = jsonschema.exceptions.best_match(entry[1].iter_errors(instance))
    if error is not None:
        raise error


_original_validate: Any = None


def install() -> None:
    """Reuse the gradebook engine and the metadata validator in this process (idempotent)."""
    global _installed, _original_validate
    if _installed:
        return
    import jsonschema
    from nbgrader.api import Gradebook
    from nbgrader.nbgraderformat import common

    Gradebook.__init__ = _gradebook_init
    Gradebook.close = _gradebook_close
    _original_validate = jsonschema.validate
    common.jsonschema = _JsonschemaWithCache(jsonschema)
    _installed = True


class _JsonschemaWithCache:
    """The ``jsonschema`` module as nbgrader's metadata checks see it, with :func:`_cached_validate`."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return _cached_validate if name == "validate" else getattr(self._module, name)
