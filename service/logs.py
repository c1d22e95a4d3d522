"""Log records that never carry a caller's input: exception texts of request errors hold it.

BentoML logs every failed request with its traceback, and the exception's text carries the input:
pydantic's `input_value=...` (a user id, a feature value), json's fragment of the raw body. Records
with an exception keep where it happened and what kind it was — the traceback's frames, the
exception's type, for a validation error the fields and error types — but not its text.
"""

from __future__ import annotations

import logging
import traceback

import pydantic

def _where(error: dict) -> str:
    loc = [str(part) for part in error["loc"]]
    if error["type"] == "extra_forbidden" and loc:
        loc[-1] = "(unknown field)"  # a name the caller made up, which may be an id or a value
    return ".".join(loc) or "(body)"


def describe(exc: BaseException) -> str:
    """An exception without its text: the type, and for a validation error where and of what kind."""
    if isinstance(exc, pydantic.ValidationError):
        where = ", ".join(f"{_where(e)}: {e['type']}"
                          for e in exc.errors(include_input=False, include_context=False, include_url=False))
        return f"{type(exc).__name__} ({where})"
    return type(exc).__name__


class NoCallerInput(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            _, exc, tb = record.exc_info
            frames = "".join(traceback.format_tb(tb)).rstrip()
            record.msg = f"{record.getMessage()}: {describe(exc)}\n{frames}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def keep_caller_input_out_of_logs() -> None:
    """Attach the filter to every handler there is (a handler's filter sees the records of every
    logger that reaches it, BentoML's and uvicorn's included) and to the root logger; idempotent."""
    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values()
                                      if isinstance(v, logging.Logger))]
    for target in [*loggers, *(h for lg in loggers for h in lg.handlers)]:
        if not any(isinstance(f, NoCallerInput) for f in target.filters):
            target.addFilter(NoCallerInput())
