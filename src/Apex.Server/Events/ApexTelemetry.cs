using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Apex.Server.Events;

/// <summary>
/// What the server traces and counts, for OpenTelemetry: a span per run, agent and tool call (source
/// <see cref="Name"/>), and counters of runs, events, tool calls and tokens (meter <see cref="Name"/>). Nothing is
/// recorded unless a listener is attached (an OTLP exporter, the Prometheus endpoint, a test).
/// </summary>
internal sealed class ApexTelemetry : IDisposable
{
    public const string Name = "Apex";

    private readonly Counter<long> _runs;
    private readonly Counter<long> _events;
    private readonly Counter<long> _toolCalls;
    private readonly Counter<long> _tokens;
    private readonly Histogram<int> _batches;

    public ApexTelemetry(IMeterFactory meters)
    {
        var meter = meters.Create(Name);
        _runs = meter.CreateCounter<long>("apex.runs", description: "Runs ended, by terminal status.");
        _events = meter.CreateCounter<long>("apex.events", description: "Events stored.");
        _toolCalls = meter.CreateCounter<long>("apex.tool_calls", description: "Tool calls, by tool and status.");
        _tokens = meter.CreateCounter<long>("apex.tokens", description: "Model tokens, by model and direction (input, output).");
        _batches = meter.CreateHistogram<int>("apex.event_batch.size", unit: "{event}",
            description: "Events stored per transaction of the event log: how well concurrent runs' appends are batched.");
    }

    public ActivitySource Source { get; } = new(Name);

    public void RunEnded(string status) => _runs.Add(1, new KeyValuePair<string, object?>("status", status));

    public void EventsStored(int count) => _events.Add(count);

    public void BatchStored(int count) => _batches.Record(count);

    public void ToolCalled(string tool, string status) =>
        _toolCalls.Add(1, new KeyValuePair<string, object?>("tool", tool), new KeyValuePair<string, object?>("status", status));

    public void TokensUsed(string model, long input, long output)
    {
        _tokens.Add(input, new KeyValuePair<string, object?>("model", model), new KeyValuePair<string, object?>("direction", "input"));
        _tokens.Add(output, new KeyValuePair<string, object?>("model", model), new KeyValuePair<string, object?>("direction", "output"));
    }

    public void Dispose() => Source.Dispose();
}
