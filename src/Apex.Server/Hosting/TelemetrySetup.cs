using Apex.Server.Events;
using Apex.Server.Llm;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Apex.Server.Hosting;

/// <summary>Section <c>Apex:Telemetry</c>.</summary>
internal sealed class TelemetryOptions
{
    public const string Section = "Apex:Telemetry";

    /// <summary>Serve Prometheus-style metrics at <c>/metrics</c> (unauthenticated, like every scrape target: keep it off a public address).</summary>
    public bool Prometheus { get; set; }
}

/// <summary>
/// OpenTelemetry, only where something will read it: traces and metrics (ASP.NET Core, the chat client's GenAI spans,
/// Apex's spans per run, agent and tool call, and its counters) exported over OTLP when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>
/// is set, and metrics at <c>/metrics</c> when <c>Apex:Telemetry:Prometheus</c> is true. With neither, nothing is recorded.
/// </summary>
internal static class TelemetrySetup
{
    public static WebApplicationBuilder AddApexTelemetry(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<TelemetryOptions>().BindConfiguration(TelemetryOptions.Section);
        var prometheus = builder.Configuration.GetValue<bool>($"{TelemetryOptions.Section}:{nameof(TelemetryOptions.Prometheus)}");
        var otlp = !string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        if (!prometheus && !otlp) return builder;
        var otel = builder.Services.AddOpenTelemetry().ConfigureResource(r => r.AddService("apex"));
        otel.WithMetrics(m =>
        {
            m.AddMeter(ApexTelemetry.Name, ModelPipeline.ActivitySource).AddAspNetCoreInstrumentation();
            if (prometheus) m.AddPrometheusExporter();
        });
        if (otlp)
        {
            otel.WithTracing(t => t.AddSource(ApexTelemetry.Name, ModelPipeline.ActivitySource).AddAspNetCoreInstrumentation());
            otel.UseOtlpExporter();
        }
        return builder;
    }

    public static WebApplication MapApexMetrics(this WebApplication app)
    {
        if (app.Configuration.GetValue<bool>($"{TelemetryOptions.Section}:{nameof(TelemetryOptions.Prometheus)}")) app.MapPrometheusScrapingEndpoint("/metrics");
        return app;
    }
}
