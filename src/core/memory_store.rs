//! A [`SessionStore`] that keeps everything in memory: the `memory` storage
//! kind for tokens, and the store native tests use.

use std::cell::{Cell, RefCell};

use crate::core::message::EndRecord;
use crate::core::ports::SessionStore;
use crate::core::{Error, PendingTransaction, TokenSet};

/// Tokens and the pending transaction in this tab's memory only.
#[derive(Debug, Default)]
pub struct MemorySessionStore {
    tokens: RefCell<Option<TokenSet>>,
    transaction: RefCell<Option<PendingTransaction>>,
    ended: Cell<Option<EndRecord>>,
}

impl SessionStore for MemorySessionStore {
    async fn load_tokens(&self) -> Result<Option<TokenSet>, Error> {
        Ok(self.tokens.borrow().clone())
    }

    async fn save_tokens(&self, tokens: &TokenSet) -> Result<(), Error> {
        *self.tokens.borrow_mut() = Some(tokens.clone());
        Ok(())
    }

    async fn clear_tokens(&self, end: EndRecord) -> Result<(), Error> {
        self.ended.set(Some(end));
        *self.tokens.borrow_mut() = None;
        Ok(())
    }

    async fn end_record(&self) -> Option<EndRecord> {
        self.ended.get()
    }

    async fn put_transaction(&self, transaction: PendingTransaction) -> Result<(), Error> {
        *self.transaction.borrow_mut() = Some(transaction);
        Ok(())
    }

    async fn take_transaction(&self) -> Result<Option<PendingTransaction>, Error> {
        Ok(self.transaction.borrow_mut().take())
    }
}
