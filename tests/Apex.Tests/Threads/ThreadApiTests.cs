using System.Net;
using System.Net.Http.Json;
using Apex.Client;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Threads;

public sealed class ThreadApiTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private ApexTestServer Server => shared.Server;

    [Fact]
    public async Task ThreadsAreCreatedListedInPagesRenamedAndDeleted()
    {
        using var client = await Server.NewUserAsync();
        var created = new List<ThreadDto>();
        for (var i = 0; i < 5; i++) created.Add(await client.CreateThreadAsync($"thread {i}"));

        var first = await client.ListThreadsAsync(limit: 2);
        Assert.Equal(["thread 4", "thread 3"], first.Items.Select(t => t.Title));
        var second = await client.ListThreadsAsync(limit: 2, cursor: first.NextCursor);
        Assert.Equal(["thread 2", "thread 1"], second.Items.Select(t => t.Title));
        var last = await client.ListThreadsAsync(limit: 2, cursor: second.NextCursor);
        Assert.Equal(["thread 0"], last.Items.Select(t => t.Title));
        Assert.Null(last.NextCursor);

        using var rename = client.Authorized(HttpMethod.Patch, $"api/threads/{created[0].Id}", JsonContent.Create(new UpdateThreadRequest("renamed", "reject"), ApexJsonContext.Default.UpdateThreadRequest));
        var renamed = await (await client.Http.SendAsync(rename)).Content.ReadFromJsonAsync(ApexJsonContext.Default.ThreadDto);
        Assert.Equal("renamed", renamed!.Title);
        Assert.Equal("reject", renamed.Strategy);
        Assert.Equal("renamed", (await client.GetThreadAsync(created[0].Id)).Title);

        using var delete = client.Authorized(HttpMethod.Delete, $"api/threads/{created[0].Id}");
        Assert.Equal(HttpStatusCode.NoContent, (await client.Http.SendAsync(delete)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Assert.ThrowsAsync<ApexApiException>(() => client.GetThreadAsync(created[0].Id))).Status);
    }

    [Fact]
    public async Task BadPagingAndBadStrategiesAreValidationProblems()
    {
        using var client = await Server.NewUserAsync();
        Assert.Equal(HttpStatusCode.BadRequest, (await Assert.ThrowsAsync<ApexApiException>(() => client.ListThreadsAsync(limit: 0))).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await Assert.ThrowsAsync<ApexApiException>(() => client.ListThreadsAsync(limit: 500))).Status);
        var error = await Assert.ThrowsAsync<ApexApiException>(() => client.CreateThreadAsync("x", "shove"));
        Assert.Equal(HttpStatusCode.BadRequest, error.Status);
        Assert.Contains("strategy", error.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnotherUsersThreadIsNotFoundOnEveryRoute()
    {
        using var owner = await Server.NewUserAsync();
        using var socket = await owner.ConnectAsync(Waits.Timeout());
        var events = await socket.RunToEndAsync("mine", cancellationToken: Waits.Timeout());
        var threadId = events[0].ThreadId!;
        var runId = events[0].RunId!;

        using var intruder = await Server.NewUserAsync();
        var routes = new (HttpMethod Method, string Path)[]
        {
            (HttpMethod.Get, $"api/threads/{threadId}"),
            (HttpMethod.Patch, $"api/threads/{threadId}"),
            (HttpMethod.Delete, $"api/threads/{threadId}"),
            (HttpMethod.Get, $"api/threads/{threadId}/messages"),
            (HttpMethod.Get, $"api/threads/{threadId}/runs"),
            (HttpMethod.Get, $"api/threads/{threadId}/events"),
            (HttpMethod.Post, $"api/threads/{threadId}/messages"),
            (HttpMethod.Get, $"api/runs/{runId}"),
            (HttpMethod.Post, $"api/runs/{runId}/cancel"),
        };
        foreach (var (method, path) in routes)
        {
            HttpContent? body = method == HttpMethod.Patch ? JsonContent.Create(new UpdateThreadRequest("stolen"), ApexJsonContext.Default.UpdateThreadRequest)
                : path.EndsWith("/messages", StringComparison.Ordinal) && method == HttpMethod.Post ? JsonContent.Create(new SendMessageRequest("hi"), ApexJsonContext.Default.SendMessageRequest)
                : null;
            using var request = intruder.Authorized(method, path, body);
            var response = await intruder.Http.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{method} {path} answered {response.StatusCode}");
            // Exactly like a missing id.
            using var missing = intruder.Authorized(method, path.Replace(threadId, Guid.CreateVersion7().ToString(), StringComparison.Ordinal).Replace(runId, Guid.CreateVersion7().ToString(), StringComparison.Ordinal),
                body is null ? null : new StringContent(await body.ReadAsStringAsync(), System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.NotFound, (await intruder.Http.SendAsync(missing)).StatusCode);
        }
        Assert.Equal("mine", (await owner.GetThreadAsync(threadId)).Title);
        Assert.Equal(2, (await owner.ListMessagesAsync(threadId)).Items.Count);
    }

    [Fact]
    public async Task RunsAreListedAndAFinishedRunCannotBeCancelled()
    {
        using var client = await Server.NewUserAsync();
        using var socket = await client.ConnectAsync(Waits.Timeout());
        var events = await socket.RunToEndAsync("hello", cancellationToken: Waits.Timeout());
        var runs = await client.ListRunsAsync(events[0].ThreadId!);
        var run = Assert.Single(runs.Items);
        Assert.Equal("completed", run.Status);

        using var cancel = client.Authorized(HttpMethod.Post, $"api/runs/{run.Id}/cancel");
        var response = await client.Http.SendAsync(cancel);
        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Contains("already finished", await response.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task HealthReadinessAndTheOpenApiDocumentAreServed()
    {
        using var http = new HttpClient { BaseAddress = Server.BaseAddress };
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri("healthz", UriKind.Relative))).StatusCode);
        Assert.Contains("ready", await http.GetStringAsync(new Uri("readyz", UriKind.Relative)), StringComparison.Ordinal);
        var openApi = await http.GetStringAsync(new Uri("openapi/v1.json", UriKind.Relative));
        Assert.Contains("/api/threads/{threadId}/runs", openApi, StringComparison.Ordinal);
        Assert.Contains("/api/auth/register", openApi, StringComparison.Ordinal);
    }
}
