//! The SQLite backend's `impl Dags for SqliteStore`: DAG versions, import errors, file sync and pausing.

use super::*;

#[async_trait]
impl Dags for SqliteStore {
    async fn upsert_dag(
        &self,
        dag: &Dag,
        file: &str,
        source: &str,
        hash: &str,
        owner: &str,
    ) -> Result<bool> {
        let spec = to_json(dag)?;
        let tags = to_json(&dag.tags)?;
        let (dag, file, source, hash, owner) = (
            dag.clone(),
            file.to_owned(),
            source.to_owned(),
            hash.to_owned(),
            owner.to_owned(),
        );
        self.write(move |tx| {
            let now = now_us();
            let other: Option<String> = tx
                .query_row(
                    "SELECT file FROM dags WHERE dag_id = ?1 AND active = 1 AND file <> ?2",
                    params![dag.id.as_str(), file],
                    |r| r.get(0),
                )
                .optional()
                .map_err(map_err)?;
            if let Some(other) = other {
                return Err(duplicate_dag_id(dag.id.as_str(), &other));
            }
            let new_version = tx
                .execute(
                    "INSERT OR IGNORE INTO dag_versions (dag_id, version_hash, file, source, spec, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![dag.id.as_str(), hash, file, source, spec, now],
                )
                .map_err(map_err)?
                > 0;
            tx.execute(
                "INSERT INTO dags (dag_id, file, version_hash, paused, active, schedule, timezone,
                     max_active_runs, description, tags, created_at, updated_at, owner)
                 VALUES (?1, ?2, ?3, ?11, 1, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10)
                 ON CONFLICT (dag_id) DO UPDATE SET file = ?2, version_hash = ?3, active = 1,
                     schedule = ?4, timezone = ?5, max_active_runs = ?6, description = ?7,
                     tags = ?8, updated_at = ?9, owner = ?10",
                params![
                    dag.id.as_str(),
                    file,
                    hash,
                    dag.schedule,
                    dag.timezone,
                    dag.max_active_runs,
                    dag.description,
                    tags,
                    now,
                    owner,
                    dag.is_paused_upon_creation.unwrap_or(false)
                ],
            )
            .map_err(map_err)?;
            // A file defines one DAG: one it defined under another id is gone.
            tx.execute(
                "UPDATE dags SET active = 0, updated_at = ?3
                 WHERE file = ?1 AND dag_id <> ?2 AND active = 1",
                params![file, dag.id.as_str(), now],
            )
            .map_err(map_err)?;
            tx.execute("DELETE FROM import_errors WHERE file = ?1", params![file])
                .map_err(map_err)?;
            Ok(new_version)
        })
        .await
    }

    async fn record_import_errors(
        &self,
        file: &str,
        dag_id: Option<&str>,
        errors: &[DagError],
        owner: &str,
    ) -> Result<()> {
        let text = to_json(&errors)?;
        let (file, dag_id, owner) = (file.to_owned(), dag_id.map(str::to_owned), owner.to_owned());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO import_errors (file, dag_id, errors, updated_at, owner)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (file) DO UPDATE SET dag_id = ?2, errors = ?3, updated_at = ?4,
                     owner = ?5",
                params![file, dag_id, text, now_us(), owner],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn sync_files(&self, owner: &str, present: &[String]) -> Result<Vec<String>> {
        let present: HashSet<String> = present.iter().cloned().collect();
        let owner = owner.to_owned();
        self.write(move |tx| {
            let gone = |sql: &str| -> Result<Vec<String>> {
                let mut stmt = tx.prepare_cached(sql).map_err(map_err)?;
                let files = stmt
                    .query_map(params![owner], |r| r.get::<_, String>(0))
                    .map_err(map_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(map_err)?;
                Ok(files.into_iter().filter(|f| !present.contains(f)).collect())
            };
            let now = now_us();
            for file in gone("SELECT file FROM dags WHERE active = 1 AND owner IN (?1, '')")? {
                tx.execute(
                    "UPDATE dags SET active = 0, updated_at = ?2
                     WHERE file = ?1 AND active = 1 AND owner IN (?3, '')",
                    params![file, now, owner],
                )
                .map_err(map_err)?;
            }
            for file in gone("SELECT file FROM import_errors WHERE owner IN (?1, '')")? {
                tx.execute("DELETE FROM import_errors WHERE file = ?1", params![file])
                    .map_err(map_err)?;
            }
            let known: HashSet<String> = query_all(
                tx,
                "SELECT file FROM dags UNION SELECT file FROM import_errors",
                [],
                |r| r.get::<_, String>(0),
            )?
            .into_iter()
            .collect();
            let mut unknown: Vec<String> = present.difference(&known).cloned().collect();
            unknown.sort();
            Ok(unknown)
        })
        .await
    }

    async fn drop_import_errors(&self, owner: &str) -> Result<()> {
        let owner = owner.to_owned();
        self.write(move |tx| {
            tx.execute("DELETE FROM import_errors WHERE owner = ?1", params![owner])
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn list_dags(&self) -> Result<Vec<DagRow>> {
        self.call(|conn| {
            query_all(
                conn,
                &format!("SELECT {DAG_COLS} FROM dags ORDER BY dag_id"),
                [],
                dag_row,
            )
        })
        .await
    }

    async fn get_dag(&self, dag_id: &DagId) -> Result<Option<DagRow>> {
        let dag_id = dag_id.0.clone();
        self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {DAG_COLS} FROM dags WHERE dag_id = ?1"),
                params![dag_id],
                dag_row,
            )
            .optional()
            .map_err(map_err)
        })
        .await
    }

    async fn get_version(&self, dag_id: &DagId, hash: &str) -> Result<Option<DagVersion>> {
        let (dag_id, hash) = (dag_id.0.clone(), hash.to_owned());
        self.call(move |conn| {
            let row: Option<(String, String, String, i64)> = conn
                .query_row(
                    "SELECT file, source, spec, created_at FROM dag_versions
                     WHERE dag_id = ?1 AND version_hash = ?2",
                    params![dag_id, hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(map_err)?;
            let Some((file, source, spec, created_at)) = row else {
                return Ok(None);
            };
            let spec: Dag = serde_json::from_str(&spec).map_err(|e| {
                Error::Database(format!(
                    "stored DAG version {dag_id}@{hash} is unreadable: {e}"
                ))
            })?;
            Ok(Some(DagVersion {
                dag_id: DagId(dag_id),
                version_hash: hash,
                file,
                source,
                spec,
                created_at: ts(created_at),
            }))
        })
        .await
    }

    async fn list_versions(&self, dag_id: &DagId) -> Result<Vec<VersionInfo>> {
        let dag_id = dag_id.0.clone();
        self.call(move |conn| {
            query_all(
                conn,
                "SELECT version_hash, file, created_at FROM dag_versions
                 WHERE dag_id = ?1 ORDER BY created_at DESC, version_hash",
                params![dag_id],
                |r| {
                    Ok(VersionInfo {
                        version_hash: r.get(0)?,
                        file: r.get(1)?,
                        created_at: ts(r.get(2)?),
                    })
                },
            )
        })
        .await
    }

    async fn list_import_errors(&self) -> Result<Vec<ImportError>> {
        self.call(|conn| {
            query_all(
                conn,
                "SELECT file, dag_id, errors, updated_at FROM import_errors ORDER BY file",
                [],
                |r| {
                    Ok(ImportError {
                        file: r.get(0)?,
                        dag_id: r.get(1)?,
                        errors: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                        updated_at: ts(r.get(3)?),
                    })
                },
            )
        })
        .await
    }

    async fn delete_dag(&self, dag_id: &DagId, what: DagDeletion) -> Result<DeleteDag> {
        let dag_id = dag_id.0.clone();
        self.write(move |tx| {
            let row: Option<(String, bool)> = tx
                .query_row(
                    "SELECT file, active FROM dags WHERE dag_id = ?1",
                    params![dag_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(map_err)?;
            let Some((file, file_present)) = row else {
                return Ok(DeleteDag::NotFound);
            };
            let unfinished = query_all(
                tx,
                "SELECT id FROM runs WHERE dag_id = ?1 AND state IN ('queued', 'running')
                 ORDER BY id LIMIT 20",
                params![dag_id],
                |r| Ok(RunId(r.get(0)?)),
            )?;
            if !unfinished.is_empty() {
                return Ok(DeleteDag::Unfinished(unfinished));
            }
            let mut deleted = DagDeleted {
                file,
                file_present,
                ..DagDeleted::default()
            };
            if what == DagDeletion::Everything {
                let count = |sql: &str| -> Result<u64> {
                    Ok(tx.execute(sql, params![dag_id]).map_err(map_err)? as u64)
                };
                deleted.log_lines = count(
                    "DELETE FROM logs WHERE ti_id IN (SELECT id FROM task_instances WHERE dag_id = ?1)",
                )?;
                deleted.attempts = count(
                    "DELETE FROM attempts WHERE ti_id IN (SELECT id FROM task_instances WHERE dag_id = ?1)",
                )?;
                deleted.task_instances = count("DELETE FROM task_instances WHERE dag_id = ?1")?;
                deleted.runs = count("DELETE FROM runs WHERE dag_id = ?1")?;
                deleted.backfills = count("DELETE FROM backfills WHERE dag_id = ?1")?;
                count("DELETE FROM schedule_slots WHERE dag_id = ?1")?;
                count("DELETE FROM dag_versions WHERE dag_id = ?1")?;
            }
            tx.execute("DELETE FROM dags WHERE dag_id = ?1", params![dag_id])
                .map_err(map_err)?;
            Ok(DeleteDag::Deleted(deleted))
        })
        .await
    }

    async fn set_paused(&self, dag_id: &DagId, paused: bool) -> Result<bool> {
        let dag_id = dag_id.0.clone();
        self.write(move |tx| {
            Ok(tx
                .execute(
                    "UPDATE dags SET paused = ?2, updated_at = ?3 WHERE dag_id = ?1",
                    params![dag_id, paused, now_us()],
                )
                .map_err(map_err)?
                > 0)
        })
        .await
    }
}
