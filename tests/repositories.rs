//! Models, repositories, typed queries, keyset paging and bulk inserts against real
//! temp-file databases.

use std::collections::HashSet;

use chrono::{Duration as ChronoDuration, NaiveDateTime};
use diesel::prelude::*;
use diesel::sqlite::Sqlite;
use litedal::Limit;
use litedal::example::models::{NewPost, NewUser, PostChanges, PostId, UserChanges, UserId};
use litedal::example::repo::{Posts, UserCursor, UserOrder, Users};
use litedal::example::schema::{posts, users};
use litedal::{BatchChunk, Error};

fn emails(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}@example.com")).collect()
}

#[test]
fn user_crud_and_error_mapping() {
    let db = litedal::example::test_db().unwrap();
    let ada = Users::insert(db.db(), &NewUser::new("Ada", "ada@example.com")).unwrap();
    assert_eq!(ada.name, "Ada");
    assert!(ada.active);
    assert_eq!(Users::find(db.db(), ada.id).unwrap().as_ref(), Some(&ada));
    assert_eq!(
        Users::find_by_email(db.db(), "ada@example.com")
            .unwrap()
            .map(|u| u.id),
        Some(ada.id)
    );
    assert_eq!(
        Users::find_by_email(db.db(), "nobody@example.com").unwrap(),
        None
    );
    assert_eq!(Users::find(db.db(), UserId(999)).unwrap(), None);

    match Users::insert(db.db(), &NewUser::new("Ada again", "ada@example.com")) {
        Err(Error::Conflict { constraint, chunk }) => {
            assert_eq!(constraint, "users.email");
            assert_eq!(chunk, None);
        }
        other => panic!("{other:?}"),
    }

    let renamed = Users::update(
        db.db(),
        ada.id,
        &UserChanges {
            name: Some("Ada Lovelace".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(renamed.name, "Ada Lovelace");
    assert_eq!(renamed.email, "ada@example.com");
    assert!(renamed.updated_at >= ada.updated_at);
    assert!(matches!(
        Users::update(db.db(), UserId(999), &UserChanges::default()),
        Err(Error::NotFound)
    ));

    let bob = Users::insert(db.db(), &NewUser::new("Bob", "bob@example.com")).unwrap();
    match Users::update(
        db.db(),
        bob.id,
        &UserChanges {
            email: Some("ada@example.com".into()),
            ..Default::default()
        },
    ) {
        Err(Error::Conflict { constraint, .. }) => assert_eq!(constraint, "users.email"),
        other => panic!("{other:?}"),
    }

    let inactive = Users::deactivate(db.db(), bob.id).unwrap();
    assert!(!inactive.active);
    assert!(matches!(
        Users::deactivate(db.db(), UserId(999)),
        Err(Error::NotFound)
    ));
    assert_eq!(Users::count(db.db()).unwrap(), 2);

    Users::delete(db.db(), bob.id).unwrap();
    assert!(matches!(
        Users::delete(db.db(), bob.id),
        Err(Error::NotFound)
    ));
    assert_eq!(Users::count(db.db()).unwrap(), 1);
}

#[test]
fn post_crud_join_and_cascade() {
    let db = litedal::example::test_db().unwrap();
    let ada = Users::insert(db.db(), &NewUser::new("Ada", "ada@example.com")).unwrap();
    let bob = Users::insert(db.db(), &NewUser::new("Bob", "bob@example.com")).unwrap();

    match Posts::insert(
        db.db(),
        &NewPost {
            user_id: UserId(999),
            title: "orphan",
            body: "",
            published: true,
        },
    ) {
        Err(Error::ForeignKey { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(Posts::count(db.db()).unwrap(), 0);

    let mut ids = Vec::new();
    for (i, author) in [&ada, &bob, &ada, &ada].iter().enumerate() {
        let title = format!("post {i}");
        let post = Posts::insert(
            db.db(),
            &NewPost {
                user_id: author.id,
                title: &title,
                body: "body",
                published: i != 2,
            },
        )
        .unwrap();
        ids.push(post.id);
    }
    let found = Posts::find(db.db(), ids[0]).unwrap().unwrap();
    assert_eq!((found.title.as_str(), found.user_id), ("post 0", ada.id));
    assert_eq!(Posts::find(db.db(), PostId(999)).unwrap(), None);

    // A user's posts, newest first, drafts included, limited.
    let by_ada = Posts::by_user(db.db(), ada.id, Limit::new(2).unwrap()).unwrap();
    assert_eq!(
        by_ada.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![ids[3], ids[2]]
    );
    // Recent published posts skip the draft.
    let recent = Posts::recent(db.db(), Limit::default()).unwrap();
    assert_eq!(
        recent.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![ids[3], ids[1], ids[0]]
    );
    let with_authors = Posts::recent_with_authors(db.db(), Limit::default()).unwrap();
    assert_eq!(with_authors.len(), 3);
    for item in &with_authors {
        assert_eq!(item.author.id, item.post.user_id);
    }
    assert_eq!(with_authors[1].author.name, "Bob");

    let published = Posts::publish(db.db(), ids[2]).unwrap();
    assert!(published.published);
    assert!(matches!(
        Posts::publish(db.db(), PostId(999)),
        Err(Error::NotFound)
    ));
    let edited = Posts::update(
        db.db(),
        ids[0],
        &PostChanges {
            title: Some("edited".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        (edited.title.as_str(), edited.body.as_str()),
        ("edited", "body")
    );
    assert!(matches!(
        Posts::update(db.db(), PostId(999), &PostChanges::default()),
        Err(Error::NotFound)
    ));

    Posts::delete(db.db(), ids[1]).unwrap();
    assert!(matches!(
        Posts::delete(db.db(), ids[1]),
        Err(Error::NotFound)
    ));
    // Deleting a user deletes their posts (ON DELETE CASCADE with foreign_keys=ON).
    Users::delete(db.db(), ada.id).unwrap();
    assert_eq!(Posts::count(db.db()).unwrap(), 0);
}

#[test]
fn repository_operations_compose_in_one_transaction() {
    let db = litedal::example::test_db().unwrap();
    let (user, post) = db
        .transaction(|conn| {
            let user = Users::insert(&mut *conn, &NewUser::new("Ada", "ada@example.com"))?;
            let post = Posts::insert(
                &mut *conn,
                &NewPost {
                    user_id: user.id,
                    title: "Hello",
                    body: "First",
                    published: true,
                },
            )?;
            // Reads on the same connection see the transaction's own writes.
            assert_eq!(Posts::count(&mut *conn)?, 1);
            Ok((user, post))
        })
        .unwrap();
    assert_eq!(
        Posts::find(db.db(), post.id).unwrap().unwrap().user_id,
        user.id
    );

    // When the second step fails, the first is rolled back with it.
    let err = db
        .transaction(|conn| {
            let user = Users::insert(&mut *conn, &NewUser::new("Bob", "bob@example.com"))?;
            Posts::insert(
                &mut *conn,
                &NewPost {
                    user_id: UserId(user.id.get() + 1000),
                    title: "bad author",
                    body: "",
                    published: false,
                },
            )?;
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, Error::ForeignKey { .. }), "{err:?}");
    assert_eq!(
        Users::find_by_email(db.db(), "bob@example.com").unwrap(),
        None
    );
    assert_eq!(Users::count(db.db()).unwrap(), 1);

    // A failing operation inside a transaction is a savepoint: the caller may recover.
    db.transaction(|conn| {
        let dup = Users::insert(&mut *conn, &NewUser::new("Ada 2", "ada@example.com"));
        assert!(matches!(dup, Err(Error::Conflict { .. })));
        Users::insert(&mut *conn, &NewUser::new("Cy", "cy@example.com"))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(Users::count(db.db()).unwrap(), 2);

    // A pooled connection outside a transaction is an executor too.
    let mut conn = db.write_connection().unwrap();
    Users::insert(&mut conn, &NewUser::new("Di", "di@example.com")).unwrap();
    drop(conn);
    assert_eq!(Users::count(db.db()).unwrap(), 3);
}

#[test]
fn query_builder_filters_in_sql() {
    let db = litedal::example::test_db().unwrap();
    let rows = [
        ("Alice", "alice@corp.example", true),
        ("alfred", "alfred@home.example", true),
        ("Albert", "albert@corp.example", false),
        ("Bea", "bea@corp.example", true),
        ("Al%ien", "alien@corp.example", true),
    ];
    for (name, email, active) in rows {
        Users::insert(
            db.db(),
            &NewUser {
                name,
                email,
                active,
            },
        )
        .unwrap();
    }
    let names = |users: Vec<litedal::example::models::User>| -> Vec<String> {
        users.into_iter().map(|u| u.name).collect()
    };
    assert_eq!(
        names(Users::query().active(true).load(db.db()).unwrap()),
        vec!["Alice", "alfred", "Bea", "Al%ien"]
    );
    assert_eq!(
        names(Users::query().active(false).load(db.db()).unwrap()),
        vec!["Albert"]
    );
    // Prefix match is case-insensitive and treats % and _ literally.
    assert_eq!(
        names(Users::query().name_prefix("al").load(db.db()).unwrap()),
        vec!["Alice", "alfred", "Albert", "Al%ien"]
    );
    assert_eq!(
        names(Users::query().name_prefix("Al%").load(db.db()).unwrap()),
        vec!["Al%ien"]
    );
    assert_eq!(
        names(
            Users::query()
                .email_domain("corp.example")
                .active(true)
                .order(UserOrder::IdDesc)
                .load(db.db())
                .unwrap()
        ),
        vec!["Al%ien", "Bea", "Alice"]
    );
    assert_eq!(
        names(
            Users::query()
                .limit(Limit::new(2).unwrap())
                .load(db.db())
                .unwrap()
        ),
        vec!["Alice", "alfred"]
    );
    let all = Users::query().load(db.db()).unwrap();
    let first = all[0].created_at;
    let last = all[4].created_at;
    let between = Users::query()
        .created_between(first, last + ChronoDuration::milliseconds(1))
        .load(db.db())
        .unwrap();
    assert_eq!(between.len(), 5);
    let empty_range = Users::query()
        .created_between(
            last + ChronoDuration::seconds(1),
            last + ChronoDuration::seconds(2),
        )
        .load(db.db())
        .unwrap();
    assert!(empty_range.is_empty());
    assert!(matches!(
        Users::query()
            .created_between(last, first - ChronoDuration::seconds(1))
            .load(db.db()),
        Err(Error::InvalidInput {
            what: "created_between",
            ..
        })
    ));
}

#[test]
fn query_builder_sql_uses_limit_and_keyset_not_offset() {
    let cursor = UserCursor {
        created_at: NaiveDateTime::parse_from_str("2026-01-02 03:04:05", "%Y-%m-%d %H:%M:%S")
            .unwrap(),
        id: UserId(41),
    };
    let query = Users::query()
        .active(true)
        .name_prefix("Al")
        .order(UserOrder::CreatedAsc)
        .after(cursor)
        .limit(Limit::new(50).unwrap())
        .to_query()
        .unwrap();
    let sql = diesel::debug_query::<Sqlite, _>(&query).to_string();
    assert!(sql.contains("`users`.`active` = ?"), "{sql}");
    assert!(sql.contains("`users`.`name` LIKE ? ESCAPE ?"), "{sql}");
    assert!(
        sql.contains(
            "(`users`.`created_at` >= ?) AND ((`users`.`created_at` > ?) OR (`users`.`id` > ?))"
        ),
        "{sql}"
    );
    assert!(
        sql.contains("ORDER BY `users`.`created_at` ASC, `users`.`id` ASC LIMIT ?"),
        "{sql}"
    );
    assert!(!sql.contains("OFFSET"), "{sql}");
    // Timestamps are bound in the stored form, with milliseconds, so the cursor's own row
    // compares equal and is not returned again.
    assert!(sql.contains("\"2026-01-02 03:04:05.000\""), "{sql}");
    assert!(sql.contains("binds: [true, \"Al%\", \"\\\\\""), "{sql}");
    assert!(sql.ends_with("UserId(41), 50]"), "{sql}");

    let by_id = Users::query().after(cursor).to_query().unwrap();
    let sql = diesel::debug_query::<Sqlite, _>(&by_id).to_string();
    assert!(
        sql.contains("WHERE (`users`.`id` > ?) ORDER BY `users`.`id` ASC LIMIT ?"),
        "{sql}"
    );
}

#[test]
fn a_cursor_on_a_whole_second_does_not_return_its_own_row() {
    use diesel::connection::SimpleConnection;
    let db = litedal::example::test_db().unwrap();
    for i in 0..3 {
        Users::insert(db.db(), &NewUser::new("w", &format!("w{i}@x.example"))).unwrap();
    }
    // The database stores "03:04:05.000"; diesel would bind a whole second as "03:04:05",
    // which sorts before it.
    db.write_connection()
        .unwrap()
        .batch_execute("UPDATE users SET created_at = '2026-01-02 03:04:05.000'")
        .unwrap();
    let all = Users::query()
        .order(UserOrder::CreatedAsc)
        .load(db.db())
        .unwrap();
    let after_first = Users::query()
        .order(UserOrder::CreatedAsc)
        .after(UserCursor::after(&all[0]))
        .load(db.db())
        .unwrap();
    assert_eq!(
        after_first.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![all[1].id, all[2].id]
    );
    let in_range = Users::query()
        .created_between(
            all[0].created_at,
            all[0].created_at + ChronoDuration::milliseconds(1),
        )
        .load(db.db())
        .unwrap();
    assert_eq!(in_range.len(), 3);
}

#[test]
fn keyset_paging_returns_each_user_exactly_once() {
    let db = litedal::example::test_db().unwrap();
    let emails = emails("page", 2500);
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("p", e)).collect();
    assert_eq!(Users::batch_insert(db.db(), &rows).unwrap(), 2500);

    for order in [
        UserOrder::IdAsc,
        UserOrder::IdDesc,
        UserOrder::CreatedAsc,
        UserOrder::CreatedDesc,
    ] {
        let mut seen = HashSet::new();
        let mut pages = 0;
        let mut cursor = None;
        loop {
            let mut query = Users::query().order(order).limit(Limit::new(1000).unwrap());
            if let Some(c) = cursor {
                query = query.after(c);
            }
            let page = query.page(db.db()).unwrap();
            pages += 1;
            for user in &page.items {
                assert!(
                    seen.insert(user.id),
                    "{order:?}: {} returned twice",
                    user.id
                );
            }
            match page.next {
                Some(next) => {
                    // Tokens survive a round trip through a URL.
                    cursor = Some(UserCursor::from_token(&next.to_token()).unwrap());
                }
                None => break,
            }
        }
        assert_eq!(seen.len(), 2500, "{order:?}");
        assert_eq!(pages, 3, "{order:?}");
    }
}

#[test]
fn limits_are_checked_not_clamped() {
    assert!(matches!(
        Limit::new(0),
        Err(Error::InvalidInput { what: "limit", .. })
    ));
    assert!(matches!(
        Limit::new(1001),
        Err(Error::InvalidInput { what: "limit", .. })
    ));
    assert!(Limit::try_from(-1_i64).is_err());
    assert!(Limit::try_from(i64::MAX).is_err());
    assert_eq!(Limit::new(1).unwrap().get(), 1);
    assert_eq!(Limit::new(1000).unwrap().get(), 1000);
    assert_eq!(Limit::default().get(), 100);
}

#[test]
fn batch_insert_of_50000_users_is_one_transaction_of_multi_row_statements() {
    let db = litedal::example::test_db().unwrap();
    let emails = emails("bulk", 50_000);
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("bulk", e)).collect();
    // 50,000 rows x 3 values = 150,000 bound values, far above SQLite's 32766 per statement.
    let inserted = db.batch_insert(users::table, &rows).unwrap();
    assert_eq!(inserted, 50_000);
    assert_eq!(Users::count(db.db()).unwrap(), 50_000);
    let last = Users::find_by_email(db.db(), "bulk49999@example.com")
        .unwrap()
        .unwrap();
    assert_eq!(last.name, "bulk");

    // diesel emits one multi-row INSERT for a slice of these insert models.
    let sql =
        diesel::debug_query::<Sqlite, _>(&diesel::insert_into(users::table).values(&rows[..3]))
            .to_string();
    assert!(
        sql.starts_with(
            "INSERT INTO `users` (`name`, `email`, `active`) VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?)"
        ),
        "{sql}"
    );
    let sql = diesel::debug_query::<Sqlite, _>(&diesel::insert_into(posts::table).values(
        &[NewPost {
            user_id: UserId(1),
            title: "t",
            body: "b",
            published: false,
        }; 2][..],
    ))
    .to_string();
    assert!(sql.contains("VALUES (?, ?, ?, ?), (?, ?, ?, ?)"), "{sql}");
}

#[test]
fn a_failing_chunk_rolls_back_the_whole_batch_and_is_named() {
    let db = litedal::example::test_db().unwrap();
    Users::insert(db.db(), &NewUser::new("first", "taken@example.com")).unwrap();
    let mut emails = emails("batch", 30_000);
    // 3 values per row -> statements of PREPARED_CHUNK_ROWS (1,024) rows, each prepared once
    // -> 30 statements; the duplicate is in the last, shorter one.
    emails[29_999] = "taken@example.com".into();
    let rows: Vec<NewUser> = emails.iter().map(|e| NewUser::new("b", e)).collect();
    match db.batch_insert(users::table, &rows) {
        Err(Error::Conflict { constraint, chunk }) => {
            assert_eq!(constraint, "users.email");
            assert_eq!(
                chunk,
                Some(BatchChunk {
                    index: 29,
                    count: 30,
                    rows: 29_696..30_000
                })
            );
            let message = Error::Conflict {
                constraint,
                chunk: Some(BatchChunk {
                    index: 29,
                    count: 30,
                    rows: 29_696..30_000,
                }),
            }
            .to_string();
            assert!(message.contains("batch statement 30 of 30"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(Users::count(db.db()).unwrap(), 1);

    // Posts for a missing author: ForeignKey, and nothing kept.
    let user = Users::find_by_email(db.db(), "taken@example.com")
        .unwrap()
        .unwrap();
    let mut posts: Vec<NewPost> = (0..10)
        .map(|_| NewPost {
            user_id: user.id,
            title: "t",
            body: "b",
            published: true,
        })
        .collect();
    posts[7].user_id = UserId(12345);
    assert!(matches!(
        Posts::batch_insert(db.db(), &posts),
        Err(Error::ForeignKey {
            chunk: Some(BatchChunk {
                index: 0,
                count: 1,
                ..
            }),
            ..
        })
    ));
    assert_eq!(Posts::count(db.db()).unwrap(), 0);
    posts[7].user_id = user.id;
    assert_eq!(Posts::batch_insert(db.db(), &posts).unwrap(), 10);
    assert_eq!(Users::batch_insert(db.db(), &[]).unwrap(), 0);
}

#[test]
fn models_serialize_for_apis() {
    let db = litedal::example::test_db().unwrap();
    let user = Users::insert(db.db(), &NewUser::new("Ada", "ada@example.com")).unwrap();
    let json = serde_json::to_value(&user).unwrap();
    assert_eq!(json["id"], serde_json::json!(user.id.get()));
    assert_eq!(json["email"], "ada@example.com");
    let back: litedal::example::models::User = serde_json::from_value(json).unwrap();
    assert_eq!(back, user);
    // Strings come back exactly, whatever they contain.
    for (i, tricky) in [
        "'; DROP TABLE users; --",
        "quote \" and ' both",
        "emoji 🦀",
        // (NUL and other control characters are refused: see the test on names below.)
        "right-to-left \u{202e} override",
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("tricky{i}@x.example");
        let stored = Users::insert(db.db(), &NewUser::new(tricky, &email)).unwrap();
        assert_eq!(
            Users::find(db.db(), stored.id).unwrap().unwrap().name,
            tricky
        );
    }
    let count: i64 = db
        .read(|conn| Ok(users::table.count().get_result(conn)?))
        .unwrap();
    assert_eq!(count, 5);
}

/// D5: a post for a missing author says what failed once, not SQLite's words after litedal's.
#[test]
fn foreign_key_error_message_says_it_once() {
    let db = litedal::example::test_db().unwrap();
    let orphan = NewPost {
        user_id: UserId(4242),
        title: "orphan",
        body: "",
        published: true,
    };
    let err = Posts::insert(db.db(), &orphan).unwrap_err();
    assert!(matches!(err, Error::ForeignKey { .. }), "{err:?}");
    assert_eq!(err.to_string(), "foreign key constraint failed");
    let err = Posts::batch_insert(db.db(), &[orphan]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "foreign key constraint failed in batch statement 1 of 1 (rows 0..1); \
         the whole batch was rolled back"
    );
}

/// D4: names that are only whitespace or hold control characters (NUL included) are refused
/// with a typed error naming `users.name`, on insert, batch insert and update; nothing is
/// written.
#[test]
fn names_without_text_or_with_control_characters_are_refused() {
    let db = litedal::example::test_db().unwrap();
    let ada = Users::insert(db.db(), &NewUser::new("Ada", "ada@example.com")).unwrap();
    for bad in [
        "",
        "   ",
        "\0",
        "\0\0\0",
        " \t\n ",
        "Ada\0",
        "two\nlines",
        "\u{7f}",
    ] {
        match Users::insert(db.db(), &NewUser::new(bad, "new@example.com")) {
            Err(Error::InvalidInput { what, reason, .. }) => {
                assert_eq!(what, "users.name", "{bad:?}");
                assert!(!reason.is_empty());
            }
            other => panic!("{bad:?}: {other:?}"),
        }
        let rows = [
            NewUser::new("Fine", "fine@example.com"),
            NewUser::new(bad, "bad@example.com"),
        ];
        match Users::batch_insert(db.db(), &rows) {
            Err(Error::InvalidInput { what, reason, .. }) => {
                assert_eq!(what, "users.name", "{bad:?}");
                assert!(reason.contains("row 1 of a batch of 2"), "{reason}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
        let rename = UserChanges {
            name: Some(bad.to_owned()),
            ..Default::default()
        };
        assert!(
            matches!(
                Users::update(db.db(), ada.id, &rename),
                Err(Error::InvalidInput {
                    what: "users.name",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(Users::count(db.db()).unwrap(), 1);
    assert_eq!(Users::find(db.db(), ada.id).unwrap().unwrap().name, "Ada");
    let err = Users::insert(db.db(), &NewUser::new("Eve", "eve\0@example.com")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                what: "users.email",
                ..
            }
        ),
        "{err:?}"
    );
}

/// D4: one account per email whatever its letter case, on both engines: the second spelling
/// is a conflict on `users.email`, lookups ignore case, and the email is stored lowercased.
#[test]
fn emails_are_unique_and_found_whatever_their_case_on_both_engines() {
    use litedal::testing::TestEngine;
    for engine in TestEngine::ALL {
        let Some(db) =
            litedal::example::any_test_db(engine, "repositories: case-insensitive emails").unwrap()
        else {
            continue;
        };
        let db = &*db;
        let ada = Users::insert(db, &NewUser::new("Ada", "Ada.Lovelace@X.example")).unwrap();
        assert_eq!(ada.email, "ada.lovelace@x.example", "{engine:?}");
        for spelling in [
            "ada.lovelace@x.example",
            "ADA.LOVELACE@X.EXAMPLE",
            " Ada.Lovelace@x.Example ",
        ] {
            match Users::insert(db, &NewUser::new("Ada again", spelling)) {
                Err(Error::Conflict { constraint, .. }) => {
                    assert_eq!(constraint, "users.email", "{engine:?} {spelling:?}")
                }
                other => panic!("{engine:?} {spelling:?}: {other:?}"),
            }
            assert_eq!(
                Users::find_by_email(db, spelling).unwrap().map(|u| u.id),
                Some(ada.id),
                "{engine:?} {spelling:?}"
            );
        }
        // Non-ASCII letters fold the same on both engines (Rust lowercases before storing).
        let zoe = Users::insert(db, &NewUser::new("Zoë", "ZOË@x.example")).unwrap();
        assert_eq!(zoe.email, "zoë@x.example", "{engine:?}");
        assert!(matches!(
            Users::insert(db, &NewUser::new("Zoë", "zoË@x.example")),
            Err(Error::Conflict { .. })
        ));
        let rows = [
            NewUser::new("B", "Bob@x.example"),
            NewUser::new("B2", "bob@X.EXAMPLE"),
        ];
        assert!(
            matches!(Users::batch_insert(db, &rows), Err(Error::Conflict { .. })),
            "{engine:?}: a batch with two spellings of one email"
        );
        // An update to another user's email in other letters is a conflict too.
        let bob = Users::insert(db, &NewUser::new("Bob", "bob@x.example")).unwrap();
        let steal = UserChanges {
            email: Some("ADA.LOVELACE@x.example".into()),
            ..Default::default()
        };
        assert!(
            matches!(
                Users::update(db, bob.id, &steal),
                Err(Error::Conflict { .. })
            ),
            "{engine:?}"
        );
        assert_eq!(Users::count(db).unwrap(), 3, "{engine:?}");
        assert_eq!(
            Users::query()
                .email_domain("X.EXAMPLE")
                .load(db)
                .unwrap()
                .len(),
            3,
            "{engine:?}"
        );
    }
}

/// D4: the unique index on `lower(email)` also holds for rows written around the repository
/// (plain SQL), and the migration lowercased what was stored before it.
#[test]
fn the_lower_email_index_refuses_a_mixed_case_duplicate_written_in_plain_sql() {
    use diesel::connection::SimpleConnection;
    let db = litedal::example::test_db().unwrap();
    db.db()
        .transaction(|conn| {
            Ok(conn
                .batch_execute("INSERT INTO users (name, email) VALUES ('Ada', 'ada@x.example')")?)
        })
        .unwrap();
    let err = db
        .db()
        .transaction(|conn| {
            Ok(conn
                .batch_execute("INSERT INTO users (name, email) VALUES ('Ada', 'ADA@x.example')")?)
        })
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
}

/// D4: the migration lowercases the emails stored before it, and refuses (changing nothing)
/// when two of them differ only in case.
#[test]
fn the_email_migration_lowercases_old_rows_and_refuses_case_duplicates() {
    use diesel::connection::SimpleConnection;
    use diesel_migrations::MigrationHarness;
    let before_the_migration = |rows: &str| {
        let db = litedal::example::test_db_with(|b| b.run_migrations(false)).unwrap();
        {
            let mut conn = db.write_connection().unwrap();
            let migrations = litedal::Migrations(&litedal::example::MIGRATIONS);
            for _ in 0..3 {
                conn.run_next_migration(migrations).unwrap();
            }
            conn.batch_execute(&format!("INSERT INTO users (name, email) VALUES {rows}"))
                .unwrap();
        }
        db
    };
    let db = before_the_migration("('Ada', 'Ada@X.example'), ('Bob', 'bob@x.example')");
    assert_eq!(
        db.run_pending_migrations().unwrap(),
        ["2026-12-04-000001_users_email_case_insensitive"]
    );
    let ada = Users::find_by_email(db.db(), "ADA@x.example")
        .unwrap()
        .unwrap();
    assert_eq!(
        (ada.name.as_str(), ada.email.as_str()),
        ("Ada", "ada@x.example")
    );

    let db = before_the_migration("('Ada', 'Ada@x.example'), ('ada', 'ada@x.example')");
    let err = db.run_pending_migrations().unwrap_err();
    assert!(matches!(err, Error::Migration { .. }), "{err:?}");
    let stored: Vec<String> = db
        .read(|conn| {
            Ok(users::table
                .select(users::email)
                .order(users::id)
                .load(conn)?)
        })
        .unwrap();
    assert_eq!(stored, ["Ada@x.example", "ada@x.example"]);
}
