// Swagger UI on this server's own OpenAPI document: every operation expanded, tokens kept across reloads.
window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  docExpansion: "full",
  defaultModelsExpandDepth: 1,
  deepLinking: true,
  persistAuthorization: true,
  displayRequestDuration: true,
  presets: [SwaggerUIBundle.presets.apis],
});
