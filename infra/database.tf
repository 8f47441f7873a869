# Cloud SQL for PostgreSQL 15, private IP only.
#
# Extensions (migrations/0001_extensions.sql creates them): `vector` (pgvector) and
# `pg_stat_statements` are on Cloud SQL's supported list; pg_stat_statements needs no
# shared_preload_libraries flag (Cloud SQL does not expose that setting). `hypopg` is expected on
# the same list but was not confirmed: check `SELECT name FROM pg_available_extensions WHERE
# name = 'hypopg'` on a new instance (docs/deploy.md says what was and was not verified).
# CREATE EXTENSION needs a member of cloudsqlsuperuser, which every user created through the Cloud
# SQL API (google_sql_user below) is.
#
# TLS: the functions connect with tokio-postgres without TLS (NoTls), over the private IP inside
# the VPC, so ssl_mode allows unencrypted connections. Switch to ENCRYPTED_ONLY once the pool
# speaks TLS.

resource "google_sql_database_instance" "main" {
  name                = "${var.name_prefix}-pg"
  region              = var.region
  database_version    = "POSTGRES_15"
  deletion_protection = var.db_deletion_protection

  settings {
    tier              = var.db_tier
    edition           = "ENTERPRISE"
    availability_type = var.db_high_availability ? "REGIONAL" : "ZONAL"
    disk_type         = "PD_SSD"
    disk_size         = var.db_disk_size_gb
    disk_autoresize   = true

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = google_compute_network.main.id
      enable_private_path_for_google_cloud_services = true
      ssl_mode                                      = "ALLOW_UNENCRYPTED_AND_ENCRYPTED"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "02:00"
    }

    maintenance_window {
      day  = 7
      hour = 4
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      record_client_address   = false
    }

    # The index advisor reads pg_stat_statements; count statements inside functions too.
    database_flags {
      name  = "pg_stat_statements.track"
      value = "all"
    }

    database_flags {
      name  = "log_min_duration_statement"
      value = "1000"
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "quarry" {
  name     = "quarry"
  instance = google_sql_database_instance.main.name
}

# The owner role: runs the migrations and owns the schema. Alphanumeric only so it can sit in a URL
# without escaping.
resource "random_password" "db_owner" {
  length  = 32
  special = false
}

resource "google_sql_user" "owner" {
  name     = "quarry"
  instance = google_sql_database_instance.main.name
  password = random_password.db_owner.result
}

# The restricted application role `quarry_app` (SELECT on the data, INSERT on the audit log,
# row-level security) is created by migrations/0004_governance.sql, not here: `quarry migrate`
# gives it LOGIN and the password of APP_DATABASE_URL.
resource "random_password" "db_app" {
  length  = 32
  special = false
}

locals {
  app_database_url = format(
    "postgres://quarry_app:%s@%s:5432/%s",
    random_password.db_app.result,
    google_sql_database_instance.main.private_ip_address,
    google_sql_database.quarry.name,
  )

  database_url = format(
    "postgres://%s:%s@%s:5432/%s",
    google_sql_user.owner.name,
    random_password.db_owner.result,
    google_sql_database_instance.main.private_ip_address,
    google_sql_database.quarry.name,
  )
}
