"""Pagers: iterate a list method's items across pages, or its pages one by one.

A pager fetches the first page when you first iterate, and the next when you reach the
end of one. ``next_page_token`` is the token of the page after the last one fetched
("" once there is none), so a listing can be resumed later with ``page_token=``.

>>> pager = client.list_locations(page_size=50)          # doctest: +SKIP
>>> for page in pager.pages:                             # doctest: +SKIP
...     print(len(page.locations), pager.next_page_token)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Generic, TypeVar

Item = TypeVar("Item")
Page = TypeVar("Page")


class Pager(Generic[Page, Item]):
    """The items of every page, fetched a page at a time as you iterate."""

    def __init__(
        self, fetch: Callable[[str], Page], items: Callable[[Page], Iterable[Item]], *, token: str
    ) -> None:
        self._fetch = fetch
        self._items_of = items
        self.next_page_token = token
        self._started = False
        self._items: Iterator[Item] | None = None

    @property
    def pages(self) -> Iterator[Page]:
        """The pages (whole responses) not fetched yet, one by one."""
        while not self._started or self.next_page_token:
            self._started = True
            page = self._fetch(self.next_page_token)
            self.next_page_token = getattr(page, "next_page_token", "")
            yield page

    def __iter__(self) -> Iterator[Item]:
        return self

    def __next__(self) -> Item:
        if self._items is None:
            self._items = (item for page in self.pages for item in self._items_of(page))
        return next(self._items)


class AsyncPager(Generic[Page, Item]):
    """The items of every page for asyncio, fetched a page at a time as you iterate."""

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[Page]],
        items: Callable[[Page], Iterable[Item]],
        *,
        token: str,
    ) -> None:
        self._fetch = fetch
        self._items_of = items
        self.next_page_token = token
        self._started = False
        self._items: AsyncIterator[Item] | None = None

    @property
    async def pages(self) -> AsyncIterator[Page]:
        """The pages (whole responses) not fetched yet, one by one."""
        while not self._started or self.next_page_token:
            self._started = True
            page = await self._fetch(self.next_page_token)
            self.next_page_token = getattr(page, "next_page_token", "")
            yield page

    def __aiter__(self) -> AsyncIterator[Item]:
        return self

    async def __anext__(self) -> Item:
        if self._items is None:
            self._items = self._all_items()
        return await anext(self._items)

    async def _all_items(self) -> AsyncIterator[Item]:
        async for page in self.pages:
            for item in self._items_of(page):
                yield item
