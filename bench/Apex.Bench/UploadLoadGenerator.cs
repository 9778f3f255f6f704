using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using Apex.Client;

namespace Apex.Bench;

internal sealed record UploadLoadReport(int Uploads, int Rows, long BodyBytes, IReadOnlyList<string> UploadResults, double UploadsSeconds, int Writes,
    Percentiles WriteLatencyMs, double WriteMaxMs, double? RssStartMb, double? RssPeakMb)
{
    public override string ToString() => string.Join(Environment.NewLine,
        string.Create(CultureInfo.InvariantCulture, $"{Uploads} parallel uploads of {Rows:N0} rows ({BodyBytes / 1048576.0:0.0} MB each): {string.Join(", ", UploadResults)} in {UploadsSeconds:0.0} s"),
        string.Create(CultureInfo.InvariantCulture, $"another user's PATCH during the uploads: {Writes} writes, p50 {WriteLatencyMs.P50:0.0} ms, p95 {WriteLatencyMs.P95:0.0} ms, p99 {WriteLatencyMs.P99:0.0} ms, max {WriteMaxMs:0.0} ms"),
        RssStartMb is null ? "server RSS: no --pid" : string.Create(CultureInfo.InvariantCulture, $"server RSS: before {RssStartMb:0.0} MB, peak {RssPeakMb:0.0} MB"));
}

/// <summary>
/// <c>Apex.Bench upload-load</c>: several users upload a large CSV at once while another user renames a thread in a loop;
/// reports the other user's write latency during the uploads and the server's resident memory before and at its peak.
/// </summary>
internal static class UploadLoadGenerator
{
    private const string Password = "load-test-password";

    public static async Task<UploadLoadReport> RunAsync(Uri url, int uploads, int rows, int? serverPid, TextWriter log)
    {
        var body = Csv(rows);
        log.WriteLine($"body: {body.Length:N0} bytes, {rows:N0} rows");
        async Task<ApexClient> UserAsync()
        {
            var client = new ApexClient(new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromMinutes(10) });
            await client.RegisterAsync($"upload-{Guid.NewGuid():N}@example.com", Password);
            return client;
        }
        var uploaders = await Task.WhenAll(Enumerable.Range(0, uploads).Select(_ => UserAsync()));
        var writer = await UserAsync();
        var thread = await writer.CreateThreadAsync("bench");

        var rssStart = SseLoadGenerator.Rss(serverPid);
        var peak = rssStart ?? 0;
        using var done = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
            while (await timer.WaitForNextTickAsync(CancellationToken.None) && !done.IsCancellationRequested)
                if (SseLoadGenerator.Rss(serverPid) is { } rss) peak = Math.Max(peak, rss);
        });

        var clock = Stopwatch.StartNew();
        var sends = uploaders.Select(async client =>
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new("text/csv");
            using var request = client.Authorized(HttpMethod.Post, "api/workloads?replace=true", content);
            using var response = await client.Http.SendAsync(request);
            return $"{(int)response.StatusCode}";
        }).ToList();
        var all = Task.WhenAll(sends);

        var latencies = new List<double>();
        for (var n = 0; !all.IsCompleted; n++)
        {
            var started = Stopwatch.GetTimestamp();
            using var patch = writer.Authorized(HttpMethod.Patch, $"api/threads/{thread.Id}", JsonContent.Create(new UpdateThreadRequest($"bench {n}"), ApexJsonContext.Default.UpdateThreadRequest));
            using var response = await writer.Http.SendAsync(patch);
            response.EnsureSuccessStatusCode();
            latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        var results = await all;
        var seconds = clock.Elapsed.TotalSeconds;
        await done.CancelAsync();
        await sampler;
        foreach (var client in uploaders) client.Dispose();
        writer.Dispose();
        return new UploadLoadReport(uploads, rows, body.Length, results, seconds, latencies.Count, Percentiles.Of(latencies), latencies.Count == 0 ? 0 : latencies.Max(),
            rssStart, rssStart is null ? null : peak);
    }

    /// <summary>About 75 bytes a row, like the probe's 15 MB / 200,000-row file.</summary>
    private static byte[] Csv(int rows)
    {
        var csv = new StringBuilder("timestamp,provider,model,prompt_tokens,completion_tokens,latency_ms,status,prompt_hash,feature,team\n");
        for (var i = 0; i < rows; i++)
            csv.Append(CultureInfo.InvariantCulture, $"2026-11-{1 + i % 28:00}T{i % 24:00}:{i % 60:00}:00.000Z,openai,gpt-4o-mini,{100 + i % 900},{20 + i % 300},{300 + i % 700}.5,ok,h{i % 5000:0000},summarize,support\n");
        return Encoding.UTF8.GetBytes(csv.ToString());
    }
}
