"""The interactive residual-stream explorer: one self-contained HTML page per tutorial example
(``tfconstruct explore FAMILY``), built from the same family registration as the tutorials.

``write_pages(folder, examples)`` writes the pages; ``check_page(path, example)`` steps through one in headless
chromium and compares what it renders with the trace (``find_browser()`` says whether one can be driven, and why
not); ``access`` / ``slot_status`` and ``steps`` / ``split_hook`` are the reads, writes, stale slots and timeline
read off any model."""

from .access import Access as Access, access as access, slot_status as slot_status
from .browser import BrowserFound as BrowserFound, Page as Page, find_browser as find_browser
from .check import PageCheck as PageCheck, check_page as check_page
from .page import page_data as page_data, write_pages as write_pages
from .timeline import Step as Step, split_hook as split_hook, steps as steps
