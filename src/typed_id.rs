//! Typed ids: `i64` newtypes that diesel reads and binds as `BigInt`, so that a `UserId`
//! cannot be passed where a `PostId` is expected.

/// Declares a typed id: an `i64` newtype that diesel reads and binds as `BigInt` (on
/// SQLite), serializes as a plain number, and displays as one.
///
/// The generated derives name `diesel`, so the crate that uses the macro depends on diesel
/// (as every crate with diesel models does); serde comes through litedal.
///
/// ```
/// use diesel::prelude::*;
///
/// litedal::typed_id! {
///     /// The id of a row in `notes`.
///     pub NoteId
/// }
///
/// diesel::table! {
///     notes (id) {
///         id -> BigInt,
///         body -> Text,
///     }
/// }
///
/// #[derive(Queryable, Selectable)]
/// #[diesel(table_name = notes, check_for_backend(diesel::sqlite::Sqlite))]
/// struct Note {
///     id: NoteId,
///     body: String,
/// }
///
/// let id = NoteId(7);
/// assert_eq!(id.get(), 7);
/// assert_eq!(id.to_string(), "7");
/// let query = notes::table.find(id).select(Note::as_select());
/// assert!(diesel::debug_query::<diesel::sqlite::Sqlite, _>(&query).to_string().contains("7"));
/// ```
#[macro_export]
macro_rules! typed_id {
    ($(#[$meta:meta])* $vis:vis $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        $vis struct $name(pub i64);

        impl $name {
            /// The raw row id.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S: $crate::__private::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                serializer.serialize_i64(self.0)
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::std::result::Result<Self, D::Error> {
                <i64 as $crate::__private::serde::Deserialize<'de>>::deserialize(deserializer)
                    .map($name)
            }
        }

        // Generic over the backend: the same id type works on SQLite, PostgreSQL and
        // diesel's MultiBackend, exactly as an i64 does.
        impl<DB> diesel::serialize::ToSql<diesel::sql_types::BigInt, DB> for $name
        where
            DB: diesel::backend::Backend,
            i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                <i64 as diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>>::to_sql(&self.0, out)
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::BigInt, DB> for $name
        where
            DB: diesel::backend::Backend,
            i64: diesel::deserialize::FromSql<diesel::sql_types::BigInt, DB>,
        {
            fn from_sql(
                value: <DB as diesel::backend::Backend>::RawValue<'_>,
            ) -> diesel::deserialize::Result<Self> {
                <i64 as diesel::deserialize::FromSql<diesel::sql_types::BigInt, DB>>::from_sql(value).map($name)
            }
        }
    };
}
