// Starts Swagger UI (vendored, static/vendor/swagger-ui/) on the served OpenAPI document.
window.addEventListener("DOMContentLoaded", function () {
  window.SwaggerUIBundle({ url: "/api/v1/openapi.json", dom_id: "#swagger-ui",
                           deepLinking: true, tryItOutEnabled: false });
});
