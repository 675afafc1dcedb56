//! Noticing that PostgreSQL aborted a write transaction, and why.
//!
//! When a statement fails inside a PostgreSQL transaction, the server marks the whole
//! transaction failed: every later statement is refused and `COMMIT` silently becomes
//! `ROLLBACK` (libpq reports it as a success). A closure that ignores the failed statement's
//! error and returns `Ok` (the SQLite idiom, where only the statement is undone) would be told
//! that its writes committed while nothing was written. diesel follows libpq's transaction
//! status after every statement (`requires_rollback_maybe_up_to_top_level`), so litedal checks
//! it before committing ([`aborted`]) and returns the failed statement's error instead, as
//! SQLite's `Database::transaction` does when SQLite rolled the transaction back.
//!
//! The failed statement's error is remembered by [`FailureRecorder`], the instrumentation
//! litedal gives every pooled connection (it forwards every event to the statement timers).
//! A connection litedal did not open has none; the error is then
//! [`Error::TransactionAborted`] without a cause.

use diesel::connection::{
    AnsiTransactionManager, InTransactionStatus, Instrumentation, InstrumentationEvent,
    TransactionManager, TransactionManagerStatus, ValidTransactionManagerStatus,
};
use diesel::pg::PgConnection;
use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error as DieselError};

use crate::error::Error;

/// The instrumentation of litedal's PostgreSQL connections: remembers the first statement
/// that failed since the last one that succeeded, and passes every event on to `inner`.
///
/// In a transaction that is the statement that made PostgreSQL abort it: once a statement
/// failed, every later one fails too (only a rollback succeeds, which ends the abort), so no
/// success comes between the cause and the check before `COMMIT`.
pub(crate) struct FailureRecorder {
    inner: Option<Box<dyn Instrumentation>>,
    first_failure: Option<FailedStatement>,
}

impl FailureRecorder {
    /// A recorder that forwards to `inner` (the statement timers), if any.
    pub(crate) fn new(inner: Option<Box<dyn Instrumentation>>) -> FailureRecorder {
        FailureRecorder {
            inner,
            first_failure: None,
        }
    }

    /// Forgets what was recorded, returning it.
    fn take(&mut self) -> Option<FailedStatement> {
        self.first_failure.take()
    }
}

impl Instrumentation for FailureRecorder {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match &event {
            InstrumentationEvent::FinishQuery { error: None, .. } => self.first_failure = None,
            InstrumentationEvent::FinishQuery {
                error: Some(DieselError::DatabaseError(kind, info)),
                ..
            } if self.first_failure.is_none() => {
                self.first_failure = Some(FailedStatement::of(*kind, info.as_ref()));
            }
            _ => {}
        }
        if let Some(inner) = &mut self.inner {
            inner.on_connection_event(event);
        }
    }
}

/// `Some(error)` when a statement failed and PostgreSQL now refuses everything up to the
/// rollback (a `COMMIT` would silently roll back): the failed statement's error, or
/// [`Error::TransactionAborted`] when no record of it was kept. `None` when the transaction
/// can commit.
pub(crate) fn aborted(conn: &mut PgConnection) -> Option<Error> {
    let failed = matches!(
        AnsiTransactionManager::transaction_manager_status_mut(conn),
        TransactionManagerStatus::Valid(ValidTransactionManagerStatus {
            in_transaction: Some(InTransactionStatus {
                requires_rollback_maybe_up_to_top_level: true,
                ..
            }),
            ..
        })
    );
    if !failed {
        return None;
    }
    let cause = recorder(conn).and_then(FailureRecorder::take);
    Some(match cause {
        Some(statement) => Error::from(statement.into_diesel()),
        None => Error::TransactionAborted { cause: None },
    })
}

fn recorder(conn: &mut PgConnection) -> Option<&mut FailureRecorder> {
    diesel::Connection::instrumentation(conn).downcast_mut::<FailureRecorder>()
}

/// A copy of a failed statement's database error (diesel's cannot be cloned).
#[derive(Debug, Clone)]
pub(crate) struct FailedStatement {
    kind: DatabaseErrorKind,
    message: String,
    details: Option<String>,
    hint: Option<String>,
    table_name: Option<String>,
    column_name: Option<String>,
    constraint_name: Option<String>,
    statement_position: Option<i32>,
}

impl FailedStatement {
    fn of(kind: DatabaseErrorKind, info: &dyn DatabaseErrorInformation) -> FailedStatement {
        FailedStatement {
            kind,
            message: info.message().to_owned(),
            details: info.details().map(str::to_owned),
            hint: info.hint().map(str::to_owned),
            table_name: info.table_name().map(str::to_owned),
            column_name: info.column_name().map(str::to_owned),
            constraint_name: info.constraint_name().map(str::to_owned),
            statement_position: info.statement_position(),
        }
    }

    fn into_diesel(self) -> DieselError {
        DieselError::DatabaseError(self.kind, Box::new(self))
    }
}

impl DatabaseErrorInformation for FailedStatement {
    fn message(&self) -> &str {
        &self.message
    }

    fn details(&self) -> Option<&str> {
        self.details.as_deref()
    }

    fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    fn table_name(&self) -> Option<&str> {
        self.table_name.as_deref()
    }

    fn column_name(&self) -> Option<&str> {
        self.column_name.as_deref()
    }

    fn constraint_name(&self) -> Option<&str> {
        self.constraint_name.as_deref()
    }

    fn statement_position(&self) -> Option<i32> {
        self.statement_position
    }
}
