"""The study kinds: what ``odebench run`` and ``odebench KIND`` can run.

One module per kind (:mod:`.orders`, :mod:`.modern`, :mod:`.norms`, :mod:`.quality`,
:mod:`.singularity`, :mod:`.audit`, :mod:`.sde`); each declares its fields, cell function,
summary, report text, figures and command line in one :class:`~odebench.study.StudyKind` and
registers it when imported (the registry imports them lazily by name). What several kinds
share (field checks, eps models, order fits, summary text) lives in :mod:`.common`: a kind
never imports another kind. Nothing is imported here, so importing one kind does not import
the others.
"""
