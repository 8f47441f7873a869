# Secret Manager. Two kinds:
#   generated: database URLs (owner, app role), owner password and Redis URL, written here from random_password and the
#              Memorystore AUTH string (so they are in the Terraform state: keep it private);
#   manual:    created empty, filled out of band before the services start (docs/deploy.md):
#                gcloud secrets versions add <prefix>-jwt-secret --data-file=-
#
# Cloud Run reads `latest`, so rotating a manual secret is `versions add` + a new revision.

locals {
  generated_secrets = {
    database-url      = local.database_url
    database-password = random_password.db_owner.result
    app-database-url  = local.app_database_url
    redis-url         = local.redis_url
  }
  # Static key lists: for_each may not depend on the (sensitive) values.
  generated_secret_names = ["database-url", "database-password", "app-database-url", "redis-url"]
  manual_secrets         = ["jwt-secret", "jwks-url", "gemini-api-key"]
}

resource "google_secret_manager_secret" "generated" {
  for_each = toset(local.generated_secret_names)

  secret_id = "${var.name_prefix}-${each.key}"
  labels    = { app = var.name_prefix, kind = "generated" }

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "generated" {
  for_each = toset(local.generated_secret_names)

  secret      = google_secret_manager_secret.generated[each.key].id
  secret_data = local.generated_secrets[each.key]
}

resource "google_secret_manager_secret" "manual" {
  for_each = toset(local.manual_secrets)

  secret_id = "${var.name_prefix}-${each.key}"
  labels    = { app = var.name_prefix, kind = "manual" }

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

locals {
  # Every secret by short name, for the IAM bindings and the services' env.
  secret_ids = merge(
    { for k, s in google_secret_manager_secret.generated : k => s.secret_id },
    { for k, s in google_secret_manager_secret.manual : k => s.secret_id },
  )
}
