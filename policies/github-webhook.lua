-- SPDX-License-Identifier: MIT
-- A GitHub webhook endpoint: only requests whose body carries a valid
-- X-Hub-Signature-256 for the shared secret get through, as user "github".
local policy = require "lodestone.policy"

return policy.define {
  name = "github-webhook",
  authenticate = {
    -- paths: the signature is a credential on the hook alone, and the
    -- gate reads no other request's body.
    policy.webhook { provider = "github", secret_file = "demo-keys/github-webhook.secret",
                     paths = { "/hooks/github" } },
  },
  rules = {
    { path = "/hooks/github", methods = { "POST" } },
  },
  identity_headers = { ["X-User"] = "sub" },
}
