# One Cloud Run service per function, plus the migration job.
#
# Ingress and authentication:
#   ask, auth          public; Cloud Run's IAM check off: callers present Quarry's own JWT in
#                      Authorization, which every function verifies (Cloud Run IAM would claim the
#                      same header for a Google identity token).
#   sql-exec, retrieve internal ingress (reached by ask through the VPC), JWT verified again.
#   ingest             internal + IAM: only the Eventarc trigger's service account may invoke it.
#   index-advisor      internal + IAM: only the Cloud Scheduler service account may invoke it.
#
# Terraform owns the configuration; Cloud Build (cloudbuild.yaml) rolls out new images, so image
# changes made outside Terraform are ignored here.

locals {
  # Secret env shared by every function: env var name => short secret name (secrets.tf).
  common_secret_env = merge(
    { DATABASE_URL = "database-url", APP_DATABASE_URL = "app-database-url", JWT_SECRET = "jwt-secret" },
    { for k, v in { JWT_JWKS_URL = "jwks-url" } : k => v if var.enable_jwks },
  )

  functions = {
    auth = {
      ingress     = "INGRESS_TRAFFIC_ALL"
      iam_check   = false
      egress      = "PRIVATE_RANGES_ONLY"
      cpu         = "1"
      memory      = "512Mi"
      timeout_s   = 30
      concurrency = 80
      secret_env  = local.common_secret_env
    }
    ask = {
      ingress = "INGRESS_TRAFFIC_ALL"
      # All egress through the VPC: internal-ingress services accept ask only that way; Cloud NAT
      # and Private Google Access give it the internet and Google APIs.
      iam_check   = false
      egress      = "ALL_TRAFFIC"
      cpu         = "1"
      memory      = "1Gi"
      timeout_s   = 300 # SSE answers stream for a while
      concurrency = 40
      secret_env = merge(
        local.common_secret_env,
        { REDIS_URL = "redis-url" },
        { for k, v in { GEMINI_API_KEY = "gemini-api-key" } : k => v if var.enable_gemini },
      )
    }
    sql-exec = {
      ingress     = "INGRESS_TRAFFIC_INTERNAL_ONLY"
      iam_check   = false
      egress      = "PRIVATE_RANGES_ONLY"
      cpu         = "1"
      memory      = "512Mi"
      timeout_s   = 60
      concurrency = 80
      secret_env  = local.common_secret_env
    }
    retrieve = {
      ingress     = "INGRESS_TRAFFIC_INTERNAL_ONLY"
      iam_check   = false
      egress      = "PRIVATE_RANGES_ONLY"
      cpu         = "1"
      memory      = "512Mi"
      timeout_s   = 60
      concurrency = 80
      secret_env  = local.common_secret_env
    }
    ingest = {
      ingress     = "INGRESS_TRAFFIC_INTERNAL_ONLY"
      iam_check   = true
      egress      = "PRIVATE_RANGES_ONLY"
      cpu         = "2"
      memory      = "2Gi" # OCR of scanned pages
      timeout_s   = 600
      concurrency = 4
      secret_env  = local.common_secret_env
    }
    index-advisor = {
      ingress     = "INGRESS_TRAFFIC_INTERNAL_ONLY"
      iam_check   = true
      egress      = "PRIVATE_RANGES_ONLY"
      cpu         = "1"
      memory      = "512Mi"
      timeout_s   = 900
      concurrency = 1
      secret_env  = local.common_secret_env
    }
  }

  plain_env = {
    LOG_FORMAT   = "json"
    CHROMA_URL   = local.chroma_url
    PG_POOL_SIZE = tostring(var.db_pool_size)
  }

  # Per-service plain variables. Service callers presenting Google OIDC tokens: Eventarc -> ingest,
  # Cloud Scheduler -> the advisor; the audience is the service's own URL, written out (Cloud
  # Run's deterministic URL) because a service cannot reference its own `uri` attribute. ask's
  # peers, sql-exec and retrieve, by the same deterministic URLs (reached through the VPC).
  service_env = {
    ask = {
      SQL_EXEC_URL   = "https://${var.name_prefix}-sql-exec-${data.google_project.this.number}.${var.region}.run.app"
      RETRIEVE_URL   = "https://${var.name_prefix}-retrieve-${data.google_project.this.number}.${var.region}.run.app"
      LLM_TIMEOUT_MS = "60000"
    }
    ingest = {
      SCHEDULER_OIDC_AUDIENCE         = "https://${var.name_prefix}-ingest-${data.google_project.this.number}.${var.region}.run.app"
      SCHEDULER_OIDC_SERVICE_ACCOUNTS = google_service_account.eventarc.email
      INGEST_TIMEOUT_SECS             = "590"
    }
    index-advisor = {
      SCHEDULER_OIDC_AUDIENCE         = "https://${var.name_prefix}-index-advisor-${data.google_project.this.number}.${var.region}.run.app"
      SCHEDULER_OIDC_SERVICE_ACCOUNTS = google_service_account.scheduler.email
    }
  }
}

resource "google_cloud_run_v2_service" "fn" {
  for_each = local.functions

  name                 = "${var.name_prefix}-${each.key}"
  location             = var.region
  ingress              = each.value.ingress
  invoker_iam_disabled = !each.value.iam_check
  deletion_protection  = false

  template {
    service_account                  = google_service_account.runtime[each.key].email
    timeout                          = "${each.value.timeout_s}s"
    max_instance_request_concurrency = each.value.concurrency

    scaling {
      min_instance_count = var.scaling[each.key].min
      max_instance_count = var.scaling[each.key].max
    }

    vpc_access {
      egress = each.value.egress
      network_interfaces {
        network    = google_compute_network.main.id
        subnetwork = google_compute_subnetwork.run.id
      }
    }

    containers {
      image = var.images[each.key]

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = each.value.cpu
          memory = each.value.memory
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = merge(local.plain_env, lookup(local.service_env, each.key, {}), lookup(var.extra_env, each.key, {}))
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = each.value.secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret_iam_member.runtime["${each.key}/${env.value}"].secret_id
              version = "latest"
            }
          }
        }
      }

      # /health probes the function's real dependencies (200 or 503). Startup waits for them;
      # liveness is lenient (3 x 30 s) so a short dependency blip does not restart instances.
      startup_probe {
        http_get {
          path = "/health"
          port = 8080
        }
        initial_delay_seconds = 0
        period_seconds        = 3
        timeout_seconds       = 2
        failure_threshold     = 40
      }

      liveness_probe {
        http_get {
          path = "/health"
          port = 8080
        }
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
      }
    }
  }

  lifecycle {
    ignore_changes = [
      template[0].containers[0].image,
      client,
      client_version,
    ]
  }

  depends_on = [
    google_secret_manager_secret_version.generated,
    google_project_service.apis,
  ]
}

# `quarry migrate` as a Cloud Run job; cloudbuild.yaml runs an execution of it before every rollout.
resource "google_cloud_run_v2_job" "migrate" {
  name                = "${var.name_prefix}-migrate"
  location            = var.region
  deletion_protection = false

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.runtime["migrate"].email
      timeout         = "900s"
      max_retries     = 0

      vpc_access {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = google_compute_network.main.id
          subnetwork = google_compute_subnetwork.run.id
        }
      }

      containers {
        image = var.images["quarry"]
        args  = ["migrate"]

        env {
          name  = "LOG_FORMAT"
          value = "json"
        }

        # The owner URL runs the migrations; the app URL's password is given to quarry_app.
        dynamic "env" {
          for_each = { DATABASE_URL = "database-url", APP_DATABASE_URL = "app-database-url" }
          content {
            name = env.key
            value_source {
              secret_key_ref {
                secret  = google_secret_manager_secret_iam_member.runtime["migrate/${env.value}"].secret_id
                version = "latest"
              }
            }
          }
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [
      template[0].template[0].containers[0].image,
      client,
      client_version,
    ]
  }

  depends_on = [
    google_secret_manager_secret_version.generated,
    google_project_service.apis,
  ]
}
