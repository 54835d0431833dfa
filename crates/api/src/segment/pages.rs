//! Cursor pagination over a Segment list endpoint, one page at a time.

use std::collections::HashSet;

use serde_json::Value;

pub(crate) use segwatch_core::canonical::kind_of;

use super::SegmentClient;
use super::error::SegmentError;

/// A paginated listing, fetched one page per [`Pages::next_page`] call.
///
/// Built by [`SegmentClient::pages`]. Follows `data.pagination.next` until it is null or absent;
/// a response without a `pagination` key is a single page. Never loops forever: a cursor seen
/// twice gives [`SegmentError::PaginationLoop`], more than `max_pages` pages gives
/// [`SegmentError::TooManyPages`].
///
/// A transient error (e.g. retries exhausted) leaves the position unchanged, so calling
/// `next_page` again retries the same page. Structural errors (loop, too many pages, malformed
/// page) are sticky: every later call returns the same error, never a silent end of list.
#[derive(Debug)]
pub struct Pages {
    client: SegmentClient,
    path: String,
    query: Vec<(String, String)>,
    items_key: String,
    state: State,
    /// Cursors already requested; a `next` among them means the server is looping.
    seen: HashSet<String>,
    pages: u32,
    total_entries: Option<u64>,
    /// What made this listing disagree with itself so far, if anything.
    disagreement: Option<String>,
}

#[derive(Debug)]
enum State {
    /// The next request to make: no cursor for the first page.
    Next(Option<String>),
    Done,
    Failed(SegmentError),
}

impl Pages {
    pub(super) fn new(
        client: SegmentClient,
        path: &str,
        query: Vec<(String, String)>,
        items_key: &str,
    ) -> Self {
        Pages {
            client,
            path: path.to_owned(),
            query,
            items_key: items_key.to_owned(),
            state: State::Next(None),
            seen: HashSet::new(),
            pages: 0,
            total_entries: None,
            disagreement: None,
        }
    }

    /// Fetches the next page: `Ok(Some(items))`, or `Ok(None)` once the listing is exhausted.
    ///
    /// Items are returned exactly as the API sent them.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Value>>, SegmentError> {
        let cursor = match &self.state {
            State::Done => return Ok(None),
            State::Failed(e) => return Err(e.clone()),
            State::Next(cursor) => cursor.clone(),
        };
        let max_pages = self.client.inner.max_pages;
        if self.pages >= max_pages {
            return Err(self.fail(SegmentError::TooManyPages {
                path: self.path.clone(),
                max_pages,
            }));
        }

        let mut query = self.query.clone();
        query.push((
            "pagination[count]".to_owned(),
            self.client.inner.page_size.to_string(),
        ));
        if let Some(cursor) = &cursor {
            query.push(("pagination[cursor]".to_owned(), cursor.clone()));
        }
        // An error here (transient or not) leaves the state alone: the caller may try again.
        let mut data = self.client.get_data(&self.path, &query).await?;
        self.pages += 1;

        let items = match data.remove(&self.items_key) {
            Some(Value::Array(items)) => items,
            Some(other) => {
                let detail = format!(
                    "`data.{}` is {}, expected an array",
                    self.items_key,
                    kind_of(&other)
                );
                return Err(self.malformed(detail));
            }
            None => {
                let detail = format!("`data.{}` is missing", self.items_key);
                return Err(self.malformed(detail));
            }
        };

        self.state = match data.get("pagination") {
            // No pagination key (e.g. `/labels`): the whole list was this one page.
            None | Some(Value::Null) => State::Done,
            Some(Value::Object(pagination)) => {
                if let Some(total) = pagination.get("totalEntries").and_then(Value::as_u64) {
                    if let Some(before) = self.total_entries.filter(|b| *b != total) {
                        self.disagreement.get_or_insert_with(|| {
                            format!("`totalEntries` moved from {before} to {total} during the read")
                        });
                    }
                    self.total_entries = Some(total);
                }
                let more =
                    matches!(pagination.get("next"), Some(Value::String(n)) if !n.is_empty());
                let count = self.client.inner.page_size as usize;
                if more && items.len() < count {
                    self.disagreement.get_or_insert_with(|| {
                        format!(
                            "page {} held {} items, not the {count} asked for, yet another page followed",
                            self.pages,
                            items.len()
                        )
                    });
                }
                match pagination.get("next") {
                    None | Some(Value::Null) => State::Done,
                    // An empty cursor cannot be followed; the API uses null for "no more".
                    Some(Value::String(next)) if next.is_empty() => State::Done,
                    Some(Value::String(next)) => {
                        if !self.seen.insert(next.clone()) {
                            return Err(self.fail(SegmentError::PaginationLoop {
                                path: self.path.clone(),
                                cursor: next.clone(),
                                pages: self.pages,
                            }));
                        }
                        State::Next(Some(next.clone()))
                    }
                    Some(other) => {
                        let detail = format!(
                            "`data.pagination.next` is {}, expected a string or null",
                            kind_of(other)
                        );
                        return Err(self.malformed(detail));
                    }
                }
            }
            Some(other) => {
                let detail = format!(
                    "`data.pagination` is {}, expected an object",
                    kind_of(other)
                );
                return Err(self.malformed(detail));
            }
        };
        Ok(Some(items))
    }

    /// Why the pages read so far disagree with each other (`totalEntries` moved, or a page
    /// other than the last was short), if they do: the list changed while it was read.
    pub fn disagreement(&self) -> Option<&str> {
        self.disagreement.as_deref()
    }

    /// `data.pagination.totalEntries` from the latest page, when the API sends it.
    pub fn total_entries(&self) -> Option<u64> {
        self.total_entries
    }

    fn malformed(&mut self, detail: String) -> SegmentError {
        self.fail(SegmentError::Malformed {
            method: "GET".to_owned(),
            path: self.path.clone(),
            detail,
        })
    }

    fn fail(&mut self, error: SegmentError) -> SegmentError {
        self.state = State::Failed(error.clone());
        error
    }
}
