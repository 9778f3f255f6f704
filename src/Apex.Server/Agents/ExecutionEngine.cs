using System.Diagnostics;
using System.Text.Json;
using Apex.Client;
using Apex.Server.Events;
using Apex.Server.Execution;
using Apex.Server.Storage;

namespace Apex.Server.Agents;

/// <summary>
/// Runs one run: the supervisor runs triage, picks the agents that follow from its intent and data sufficiency
/// (<see cref="Routing"/>), runs each agent, stores the answer and ends the run with exactly one terminal event.
/// </summary>
internal sealed partial class ExecutionEngine(RunRecord run, UserExecutionContext context, RunControl control, RunEvents events, AgentRunner runner, UsageRecorder usage, ApexTelemetry telemetry,
    AgentRegistry agents, IThreadStore threads, IRunStore runs, IdGenerator ids, TimeProvider time, string nodeId, ILogger logger) : IDisposable
{
    private const int HistoryMessages = 12;
    /// <summary>The <c>run_failed</c> reason of a run whose user's monthly budget ran out before one of its model calls.</summary>
    public const string BudgetExceeded = "budget_exceeded";

    public string RunId => run.Id;

    public RunControl Control => control;

    public async Task RunAsync()
    {
        using var span = telemetry.Source.StartActivity("apex.run");
        span?.SetTag("apex.run.id", run.Id);
        span?.SetTag("apex.thread.id", run.ThreadId);
        var started = Stopwatch.GetTimestamp();
        try
        {
            await events.RunStartedAsync(nodeId);
            // The run's own message by id, and its history without the messages queued behind it: with a deep queue, the thread's
            // newest messages are later ones.
            var message = await threads.GetMessageAsync(context.UserId, run.MessageId, control.Token)
                ?? throw new InvalidOperationException("The run's message is missing.");
            IReadOnlyList<MessageRecord> history = [.. await threads.HistoryForAsync(context.UserId, context.ThreadId, run.MessageId, HistoryMessages, control.Token), message];
            var request = message.Content;

            await events.AgentStartedAsync(AgentNames.Supervisor, context.Depth, null);
            await events.AgentThinkingAsync(AgentNames.Supervisor, "Running triage first; what it reads in the request and the data decides who answers.");

            var previous = await PreviousTurnAsync(history);
            var results = new Dictionary<string, JsonElement>();
            var triage = await runner.RunAsync(agents.Get(AgentNames.Triage), context, Brief(request, history, results, previous), null, control.Token);
            if (triage.Result is { } triageResult) results[AgentNames.Triage] = triageResult;
            var triaged = AgentResults.Agent(results, AgentNames.Triage, ApexJsonContext.Default.TriageResult);
            var sufficiency = triaged?.DataSufficiency ?? DataSufficiency.Insufficient;
            var intent = Routing.IntentOf(triaged);
            var pipeline = Routing.PipelineFor(triaged, Routing.Default);
            await events.AgentThinkingAsync(AgentNames.Supervisor, $"Intent {intent}, data sufficiency {sufficiency}: {string.Join(" -> ", pipeline)}.");

            var answerId = ids.NewId();
            var answer = "";
            string? note = null;
            foreach (var name in pipeline)
            {
                var agent = agents.Get(name);
                var outcome = await runner.RunAsync(agent, context, Brief(request, history, results, previous), agent.WritesAnswer ? answerId : null, control.Token);
                if (agent.WritesAnswer)
                {
                    if (outcome.Succeeded && outcome.Text.Length > 0) answer = outcome.Text;
                    else (answer, note) = (await FallbackReportAsync(answerId, results, outcome), $"The model could not write the report ({outcome.Status}); Apex's built-in report writer wrote it from the agents' results.");
                }
                else if (outcome.Result is { } result)
                {
                    results[name] = result;
                }
            }

            await runs.SaveAnswerAsync(new MessageRecord(answerId, context.ThreadId, context.UserId, run.Id, "assistant", answer, time.GetUtcNow()),
                JsonSerializer.Serialize(results, ApexJsonContext.Default.DictionaryStringJsonElement), CancellationToken.None);
            await events.AgentCompletedAsync(AgentNames.Supervisor, "ok",
                JsonSerializer.SerializeToElement(new SupervisorResult(sufficiency, pipeline, intent), ApexJsonContext.Default.SupervisorResult));
            await events.CompletedAsync(answerId, Stopwatch.GetElapsedTime(started).TotalMilliseconds, await usage.RecordAsync(run), note);
        }
        catch (OperationCanceledException) when (control.Token.IsCancellationRequested)
        {
            await usage.RecordAsync(run);
            if (control.Reason == CancelReasons.Timeout)
                await events.FailedAsync("timeout", "The run did not finish within its time limit.");
            else
                await events.CancelledAsync(control.Reason);
        }
        catch (BudgetExceededException ex)
        {
            await usage.RecordAsync(run);
            await events.FailedAsync(BudgetExceeded, ex.Message);
        }
        catch (Exception ex)
        {
            LogRunFailed(logger, ex, run.Id);
            await usage.RecordAsync(run);
            // The exception's own words (SQL, paths, provider messages) stay in the server log.
            await events.FailedAsync("error", $"The run failed on the server; the server log has the details (run {run.Id}).");
        }
    }

    /// <summary>Reporting never fails: when the model cannot write the report, the deterministic writer does, and says so.</summary>
    private async Task<string> FallbackReportAsync(string answerId, Dictionary<string, JsonElement> results, AgentOutcome failed)
    {
        var report = ReportWriter.Write(results) +
            $"\n> The model could not write this report ({failed.Status}); Apex's built-in report writer wrote it from the figures above.\n";
        await events.MessageDeltaAsync(AgentNames.Reporting, answerId, report);
        return report;
    }

    private string Brief(string request, IReadOnlyList<MessageRecord> history, Dictionary<string, JsonElement> results, PreviousTurn? previous) =>
        JsonSerializer.Serialize(new AgentBrief(request, context.Tier, [.. history.Where(m => m.Id != run.MessageId).Select(m => new BriefMessage(m.Role, m.Content))], results,
            time.GetUtcNow(), previous), ApexJsonContext.Default.AgentBrief);

    /// <summary>
    /// The thread's previous question, with what triage read in it and what its answer singled out, from the stored results
    /// of the run that answered it: what a follow-up's "it" and "the chat feature" lean on.
    /// </summary>
    private async Task<PreviousTurn?> PreviousTurnAsync(IReadOnlyList<MessageRecord> history)
    {
        var current = history.ToList().FindIndex(m => m.Id == run.MessageId);
        var answer = history.Take(current < 0 ? history.Count : current).LastOrDefault(m => m.Role == "assistant" && m.RunId is not null);
        if (answer is null) return null;
        var question = history.TakeWhile(m => m.Id != answer.Id).LastOrDefault(m => m.Role == "user");
        if (question is null) return null;
        var stored = (await runs.GetRunAsync(context.UserId, answer.RunId!, control.Token))?.Results;
        Dictionary<string, JsonElement>? results = null;
        try
        {
            if (stored is not null) results = JsonSerializer.Deserialize(stored, ApexJsonContext.Default.DictionaryStringJsonElement);
        }
        catch (JsonException)
        {
            // results of another shape: the follow-up is read from the previous question alone
        }
        results ??= [];
        return new PreviousTurn(question.Content, AgentResults.Agent(results, AgentNames.Triage, ApexJsonContext.Default.TriageResult),
            AgentResults.Agent(results, AgentNames.Data, ApexJsonContext.Default.DataResult)?.Focus);
    }

    public void Dispose() => control.Dispose();

    [LoggerMessage(Level = LogLevel.Error, Message = "Run {RunId} failed")]
    private static partial void LogRunFailed(ILogger logger, Exception exception, string runId);
}
