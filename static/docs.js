// Swagger UI for /docs, from the fastapi-offline package served by this server (no CDN).
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null, // the default asks validator.swagger.io about the schema
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
