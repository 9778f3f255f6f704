using System.Collections.Concurrent;
using System.Diagnostics;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Hosting;

public sealed class TelemetryTests
{
    [Fact]
    public async Task ARunIsTracedAsSpansAndCountedInTheMetricsEndpoint()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var stopped = new SemaphoreSlim(0);
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Apex",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = span =>
            {
                spans.Enqueue(span);
                stopped.Release();
            },
        };
        ActivitySource.AddActivityListener(listener);
        await using var server = await ApexTestServer.StartAsync(new() { ["Apex:Telemetry:Prometheus"] = "true" });
        var ct = Waits.Timeout();
        using var client = await server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("How do I cut costs?", cancellationToken: ct);
        var runId = events[^1].RunId;

        // The run's span stops just after its terminal event is delivered: wait for it, not for a time.
        bool IsThisRun(Activity s) => s.OperationName == "apex.run" && (string?)s.GetTagItem("apex.run.id") == runId;
        while (!spans.Any(IsThisRun)) await stopped.WaitAsync(ct);
        // Spans of this run (other tests' runs may be traced by the same process-wide listener).
        var run = Assert.Single(spans, IsThisRun);
        var children = spans.Where(s => s.RootId == run.RootId).Select(s => s.OperationName).ToList();
        Assert.Contains("apex.agent triage", children);
        Assert.Contains("apex.tool workload_summary", children);

        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        var metrics = await http.GetStringAsync("metrics", ct);
        Assert.Contains("apex_runs_total{otel_scope_name=\"Apex\",status=\"run_completed\"}", metrics, StringComparison.Ordinal);
        Assert.Contains("apex_tool_calls_total", metrics, StringComparison.Ordinal);
        Assert.Contains("apex_tokens_total", metrics, StringComparison.Ordinal);
        // The event log's transactions, by how many events each stored.
        Assert.Contains("apex_event_batch_size_bucket{otel_scope_name=\"Apex\",le=\"", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheMetricsEndpointIsOffUnlessEnabled()
    {
        await using var server = await ApexTestServer.StartAsync();
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        using var response = await http.GetAsync("metrics", Waits.Timeout());
        Assert.NotEqual(System.Net.HttpStatusCode.OK, response.StatusCode);
    }
}
