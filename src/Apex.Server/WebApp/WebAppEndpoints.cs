using Apex.Server.Auth;
using Apex.Server.Storage;
using Apex.Server.Tools;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Extensions.FileProviders;

namespace Apex.Server.WebApp;

/// <summary>
/// The web app: static files from wwwroot at <c>/</c> (no build step; plain ES modules and one CSS file)
/// and the read-only figures its charts draw.
/// </summary>
internal static class WebAppEndpoints
{
    public static WebApplication UseApexWebApp(this WebApplication app)
    {
        var files = WebRoot(app);
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = files });
        app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = files,
            ContentTypeProvider = new FileExtensionContentTypeProvider(),
            // The app is small and changes with the server: revalidate every time (ETag / Last-Modified make that a 304).
            OnPrepareResponse = context => context.Context.Response.Headers.CacheControl = "no-cache",
        });
        return app;
    }

    public static RouteGroupBuilder MapWorkloadChartEndpoints(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/workloads").RequireAuthorization().WithTags("Workloads");
        group.MapGet("/charts", Charts);
        return group;
    }

    /// <summary>Cost by model and by day, latency p50/p95 by model: what the data page draws.</summary>
    private static async Task<Ok<WorkloadChartsDto>> Charts(CurrentUser user, IWorkloadStore store, CancellationToken cancellationToken)
    {
        var byModel = await store.GetCostBreakdownAsync(user.Id, "model", WorkloadFilter.None, cancellationToken);
        var byDay = await store.GetCostBreakdownAsync(user.Id, "day", WorkloadFilter.None, cancellationToken);
        var latencies = await store.GetLatenciesByModelAsync(user.Id, WorkloadFilter.None, cancellationToken);
        return TypedResults.Ok(new WorkloadChartsDto(
            [.. byModel.OrderByDescending(g => g.Cost).Select(g => new CostPointDto(g.Key, g.Calls, Math.Round(g.Cost, 4)))],
            [.. byDay.OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => new CostPointDto(g.Key, g.Calls, Math.Round(g.Cost, 4)))],
            [.. latencies.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => new LatencyPointDto(l.Key, l.Value.Length, Percentile(l.Value, 50), Percentile(l.Value, 95)))]));
    }

    // Nearest rank over the sorted latencies, as the latency_profile tool computes it (and rounds it).
    private static double Percentile(double[] sorted, double p) => Math.Round(NearestRank.Percentile(sorted, p), 1);

    /// <summary>
    /// wwwroot under the content root when it is there (a published app, the test host), else the
    /// source folder recorded by the build's static web assets manifest, so that
    /// <c>dotnet run --project src/Apex.Server</c> serves the app from any working directory.
    /// </summary>
    private static IFileProvider WebRoot(WebApplication app)
    {
        var candidates = new[]
        {
            app.Environment.WebRootPath,
            Path.Combine(app.Environment.ContentRootPath, "wwwroot"),
            Path.Combine(AppContext.BaseDirectory, "wwwroot"),
            SourceWebRoot(),
        };
        foreach (var path in candidates)
            if (!string.IsNullOrEmpty(path) && File.Exists(Path.Combine(path, "index.html"))) return new PhysicalFileProvider(path);
        return app.Environment.WebRootFileProvider;
    }

    private static string? SourceWebRoot()
    {
        var manifest = Path.Combine(AppContext.BaseDirectory, typeof(WebAppEndpoints).Assembly.GetName().Name + ".staticwebassets.runtime.json");
        if (!File.Exists(manifest)) return null;
        using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllText(manifest));
        return document.RootElement.TryGetProperty("ContentRoots", out var roots) && roots.ValueKind == System.Text.Json.JsonValueKind.Array
            ? roots.EnumerateArray().Select(r => r.GetString()).FirstOrDefault(r => r is not null && File.Exists(Path.Combine(r, "index.html")))
            : null;
    }
}

internal sealed record CostPointDto(string Key, long Calls, double CostUsd);
internal sealed record LatencyPointDto(string Model, long Calls, double P50Ms, double P95Ms);
internal sealed record WorkloadChartsDto(IReadOnlyList<CostPointDto> CostByModel, IReadOnlyList<CostPointDto> CostByDay, IReadOnlyList<LatencyPointDto> LatencyByModel);
