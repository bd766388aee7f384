"""The interactive residual-stream explorer: one self-contained HTML page per tutorial example
(``tfconstruct explore FAMILY``), built from the same family registration as the tutorials."""

from .access import Access as Access, access as access, slot_status as slot_status
from .timeline import Step as Step, split_hook as split_hook, steps as steps
