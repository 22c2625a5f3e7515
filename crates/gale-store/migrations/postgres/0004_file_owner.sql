-- The DAG processor (host and folder) that last recorded a DAG or a file's import
-- errors: only it may retire them when the file disappears from its folder, so
-- schedulers that parse different folders never undo each other.
ALTER TABLE dags ADD COLUMN owner text NOT NULL DEFAULT '';
ALTER TABLE import_errors ADD COLUMN owner text NOT NULL DEFAULT '';
