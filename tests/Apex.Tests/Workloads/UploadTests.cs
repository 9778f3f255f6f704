using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Apex.Client;
using Apex.Server.Storage;
using Apex.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Apex.Tests.Workloads;

/// <summary>Large and concurrent uploads: streamed, written in chunks that let other writes through, all-or-nothing, one at a time per user.</summary>
public sealed class UploadTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private const string Header = "timestamp,provider,model,prompt_tokens,completion_tokens,latency_ms,status,prompt_hash,feature,team\n";

    private ApexTestServer Server => shared.Server;

    private static string Row(int i) =>
        string.Create(CultureInfo.InvariantCulture, $"2026-11-{1 + i % 28:00}T{i % 24:00}:{i % 60:00}:00Z,openai,gpt-4o-mini,{100 + i % 900},{20 + i % 300},{300 + i % 700}.5,ok,h{i % 500},chat,support\n");

    /// <summary>A CSV body written as the request goes, never held whole; it can stop at a row until <c>pause</c> completes.</summary>
    private sealed class RowsContent(int rows, int pauseAt = -1, Func<Task>? pause = null, string? last = null) : HttpContent
    {
        public RowsContent() : this(0) { }

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            var text = new StringBuilder(Header);
            for (var i = 0; i < rows; i++)
            {
                if (i == pauseAt && pause is not null)
                {
                    await stream.WriteAsync(Encoding.UTF8.GetBytes(text.ToString()), cancellationToken);
                    await stream.FlushAsync(cancellationToken);
                    text.Clear();
                    await pause();
                }
                text.Append(Row(i));
                if (text.Length < 64 * 1024) continue;
                await stream.WriteAsync(Encoding.UTF8.GetBytes(text.ToString()), cancellationToken);
                text.Clear();
            }
            text.Append(last);
            await stream.WriteAsync(Encoding.UTF8.GetBytes(text.ToString()), cancellationToken);
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    private static Task<HttpResponseMessage> UploadAsync(ApexClient client, HttpContent body, CancellationToken cancellationToken, string query = "")
    {
        body.Headers.ContentType = new("text/csv");
        var request = client.Authorized(HttpMethod.Post, "api/workloads" + query, body);
        return client.Http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
    }

    private static async Task<WorkloadSummaryDto> SummaryAsync(ApexClient client, CancellationToken cancellationToken)
    {
        using var response = await client.Http.SendAsync(client.Authorized(HttpMethod.Get, "api/workloads"), cancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync(ApexJsonContext.Default.WorkloadSummaryDto, cancellationToken))!;
    }

    /// <summary>What the database holds for the user, visible or not: the rows of staging batches, and all rows.</summary>
    private static async Task<(long Staged, long Rows)> StoredAsync(ApexTestServer server, string userId, CancellationToken cancellationToken)
    {
        await using var connection = await server.Services.GetRequiredService<Database>().OpenAsync(cancellationToken);
        var staged = await connection.ScalarAsync("SELECT COALESCE(SUM(row_count), 0) FROM workload_batches WHERE user_id = @u AND state = 'staging'", null, cancellationToken, ("@u", userId));
        var rows = await connection.ScalarAsync("SELECT COUNT(*) FROM workload_calls WHERE user_id = @u", null, cancellationToken, ("@u", userId));
        return (staged ?? 0, rows ?? 0);
    }

    /// <summary>Repeats a read of the server's state until it holds; bounded by the token (the state is the event waited on).</summary>
    private static async Task UntilAsync(Func<Task<bool>> condition, CancellationToken cancellationToken)
    {
        while (!await condition()) cancellationToken.ThrowIfCancellationRequested();
    }

    private static async Task<string> ProblemTypeAsync(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("type").GetString()!;

    [Fact]
    public async Task AnotherUsersWritesGoThroughWhileALargeUploadIsBeingWritten()
    {
        var ct = Waits.Timeout(240);
        using var uploader = Server.CreateClient();
        uploader.Http.Timeout = TimeSpan.FromMinutes(4);
        await uploader.RegisterAsync($"big-{Guid.NewGuid():N}@example.com", "correct horse battery", ct);
        var uploaderId = (await uploader.MeAsync(ct)).Id;
        using var other = await Server.NewUserAsync();
        var thread = await other.CreateThreadAsync("title", cancellationToken: ct);

        // The other user's writes: each PATCH is bracketed by two reads of how many rows the upload has staged. A PATCH with
        // staged rows before and after it completed while the upload was being written; staged counts that grow between
        // such PATCHes show the upload's chunks and the other user's writes taking turns on the writer.
        var duringUpload = new List<(long Before, long After)>();
        var enough = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var writes = Task.Run(async () =>
        {
            for (var n = 0; !stop.IsCancellationRequested; n++)
            {
                var before = (await StoredAsync(Server, uploaderId, ct)).Staged;
                using var patch = other.Authorized(HttpMethod.Patch, $"api/threads/{thread.Id}", JsonContent.Create(new UpdateThreadRequest($"title {n}"), ApexJsonContext.Default.UpdateThreadRequest));
                using var response = await other.Http.SendAsync(patch, ct);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                var after = (await StoredAsync(Server, uploaderId, ct)).Staged;
                if (before > 0 && after > 0) duringUpload.Add((before, after));
                if (duringUpload.Count >= 5 && duringUpload.Select(d => d.After).Distinct().Count() >= 3) enough.TrySetResult();
            }
        }, ct);

        long visibleWhileWriting = -1;
        var upload = UploadAsync(uploader, new RowsContent(200_000, pauseAt: 150_000, pause: async () =>
        {
            // The body stops here until the other user's writes have been seen passing between the upload's chunks.
            await enough.Task.WaitAsync(ct);
            visibleWhileWriting = (await SummaryAsync(uploader, ct)).Calls;
        }), ct);
        using var response = await upload;
        await stop.CancelAsync();
        await writes.ContinueWith(_ => { }, TaskScheduler.Default);
        Assert.False(writes.IsFaulted, writes.Exception?.ToString());

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var report = await response.Content.ReadFromJsonAsync(ApexJsonContext.Default.WorkloadReport, ct);
        Assert.Equal((200_000, 0), (report!.RowsAccepted, report.RowsRejected));
        Assert.Equal(0, visibleWhileWriting); // staged rows are invisible until the upload commits
        Assert.True(duringUpload.Count >= 5);
        Assert.Equal(200_000, (await SummaryAsync(uploader, ct)).Calls);
        Assert.Equal((0L, 200_000L), await StoredAsync(Server, uploaderId, ct));
    }

    [Fact]
    public async Task ASecondUploadOfTheSameUserWhileTheFirstIsImportingIsRefused()
    {
        var ct = Waits.Timeout(120);
        using var client = await Server.NewUserAsync();
        var userId = (await client.MeAsync(ct)).Id;
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = UploadAsync(client, new RowsContent(10_000, pauseAt: 5_000, pause: () => release.Task.WaitAsync(ct)), ct);
        await UntilAsync(async () => (await StoredAsync(Server, userId, ct)).Staged > 0, ct);

        using (var second = await UploadAsync(client, new RowsContent(10), ct))
        {
            Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
            Assert.Equal("upload_in_progress", await ProblemTypeAsync(second));
        }
        using var someoneElse = await Server.NewUserAsync();
        using (var theirs = await UploadAsync(someoneElse, new RowsContent(10), ct)) Assert.Equal(HttpStatusCode.OK, theirs.StatusCode);

        release.SetResult();
        using var done = await first;
        Assert.Equal(HttpStatusCode.OK, done.StatusCode);
        using (var again = await UploadAsync(client, new RowsContent(10), ct)) Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal(10_010, (await SummaryAsync(client, ct)).Calls);
    }

    [Fact]
    public async Task AnUploadTheClientAbandonsMidBodyLeavesNoRows()
    {
        var ct = Waits.Timeout(120);
        using var client = await Server.NewUserAsync();
        var userId = (await client.MeAsync(ct)).Id;
        using var abandon = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var never = new TaskCompletionSource();
        var upload = UploadAsync(client, new RowsContent(20_000, pauseAt: 9_000, pause: () => never.Task.WaitAsync(abandon.Token)), abandon.Token);
        await UntilAsync(async () => (await StoredAsync(Server, userId, ct)).Rows > 0, ct);

        await abandon.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => upload);
        // The server notices the aborted request, marks the upload aborted and deletes its rows.
        await UntilAsync(async () => await StoredAsync(Server, userId, ct) == (0, 0), ct);
        Assert.Equal(0, (await SummaryAsync(client, ct)).Calls);
        using var next = await UploadAsync(client, new RowsContent(5), ct);
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.Equal(5, (await SummaryAsync(client, ct)).Calls);
    }

    [Fact]
    public async Task ABadRowAtTheEndInStrictModeStoresNothingOfTheChunksWrittenBefore()
    {
        var ct = Waits.Timeout(120);
        using var client = await Server.NewUserAsync();
        var userId = (await client.MeAsync(ct)).Id;
        using var response = await UploadAsync(client, new RowsContent(9_000, last: "2026-11-01T00:00:00Z,openai,gpt-4o,ten,5,100,ok,,,\n"), ct, "?strict=true");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Equal("rows_rejected", await ProblemTypeAsync(response));
        Assert.Equal(0, (await SummaryAsync(client, ct)).Calls);
        Assert.Equal((0L, 0L), await StoredAsync(Server, userId, ct));
    }

    [Fact]
    public async Task OutOfRangeValuesAreRejectedRowsAndTheSummaryStillAnswers()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        var withCost = "timestamp,provider,model,prompt_tokens,completion_tokens,latency_ms,status,cost\n"
            + "2026-11-01T00:00:00Z,openai,gpt-4o,10,5,100,ok,1e308\n"
            + "2026-11-01T00:00:00Z,openai,gpt-4o,9223372036854775807,5,100,ok,0.5\n"
            + "2026-11-01T00:00:00Z,openai,gpt-4o,10,5,1e308,ok,0.5\n"
            + "2026-11-01T00:00:00Z,openai,gpt-4o,10,5,100,ok,NaN\n"
            + "2026-11-01T00:00:00Z,openai,gpt-4o,10,5,100,ok,0.25\n";
        using var response = await UploadAsync(client, new StringContent(withCost, Encoding.UTF8), ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var report = (await response.Content.ReadFromJsonAsync(ApexJsonContext.Default.WorkloadReport, ct))!;
        Assert.Equal((1, 4), (report.RowsAccepted, report.RowsRejected));
        Assert.Equal([2, 3, 4, 5], report.Errors.Select(e => e.Line));
        Assert.Contains("cost '1e308' is above the limit", report.Errors[0].Reason, StringComparison.Ordinal);
        Assert.Contains("prompt_tokens '9223372036854775807' is above the limit", report.Errors[1].Reason, StringComparison.Ordinal);
        Assert.Contains("latency_ms '1e308' is above the limit", report.Errors[2].Reason, StringComparison.Ordinal);
        Assert.Contains("cost 'NaN' is not a non-negative number", report.Errors[3].Reason, StringComparison.Ordinal);
        var summary = await SummaryAsync(client, ct);
        Assert.Equal((1L, 10L, 0.25), (summary.Calls, summary.PromptTokens, summary.TotalCostUsd));
    }

    [Fact]
    public async Task RowsStoredBeforeTheBoundsDoNotBreakTheSummary()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        var userId = (await client.MeAsync(ct)).Id;
        // As an import without bounds stored them: two calls whose sums overflow a 64-bit integer and a double.
        await Server.Services.GetRequiredService<Database>().WriteAsync(async (c, t) =>
        {
            await c.ExecuteAsync("INSERT INTO workload_batches (user_id, id, state, row_count, created_at, lease_until) VALUES (@u, 'legacy', 'committed', 2, 0, NULL)", t, ct, ("@u", userId));
            foreach (var id in new[] { "legacy-1", "legacy-2" })
                await c.ExecuteAsync("""
                    INSERT INTO workload_calls (id, user_id, batch_id, ts, provider, model, prompt_tokens, completion_tokens, latency_ms, status, cost, prompt_hash, feature, team)
                    VALUES (@id, @u, 'legacy', 0, 'p', 'm', 9223372036854775807, 9223372036854775807, 1e308, 'ok', 1e308, NULL, NULL, NULL)
                    """, t, ct, ("@id", id), ("@u", userId));
            return 0;
        }, ct);
        var summary = await SummaryAsync(client, ct);
        Assert.Equal((2L, 2 * WorkloadBounds.MaxTokens, 2 * WorkloadBounds.MaxCostUsd), (summary.Calls, summary.PromptTokens, summary.TotalCostUsd));
    }

    [Fact]
    public async Task AnUploadThatWouldPassTheRowCapIsRefusedWhole()
    {
        var ct = Waits.Timeout();
        await using var server = await ApexTestServer.StartAsync(new() { ["Apex:Workloads:MaxRowsPerUser"] = "250", ["Apex:Workloads:UploadChunkRows"] = "100" });
        using var client = await server.NewUserAsync();
        var userId = (await client.MeAsync(ct)).Id;
        using (var first = await UploadAsync(client, new RowsContent(200), ct)) Assert.Equal(HttpStatusCode.OK, first.StatusCode);

        // Appending 100 would make 300: refused as soon as the 51st row is read, and what was written of it removed.
        using (var append = await UploadAsync(client, new RowsContent(100), ct))
        {
            Assert.Equal(HttpStatusCode.Conflict, append.StatusCode);
            Assert.Equal("workload_row_limit", await ProblemTypeAsync(append));
        }
        // Replacing with 400 is refused at the 251st row (the rows it would replace do not count); the stored 200 stay.
        using (var replace = await UploadAsync(client, new RowsContent(400), ct, "?replace=true"))
        {
            Assert.Equal(HttpStatusCode.Conflict, replace.StatusCode);
            Assert.Contains("at most 250 rows", await replace.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
        }
        Assert.Equal(200, (await SummaryAsync(client, ct)).Calls);
        Assert.Equal((0L, 200L), await StoredAsync(server, userId, ct));

        using (var replace = await UploadAsync(client, new RowsContent(250), ct, "?replace=true")) Assert.Equal(HttpStatusCode.OK, replace.StatusCode);
        Assert.Equal(250, (await SummaryAsync(client, ct)).Calls);
        Assert.Equal((0L, 250L), await StoredAsync(server, userId, ct)); // the replaced rows are deleted, not only hidden
    }
}
