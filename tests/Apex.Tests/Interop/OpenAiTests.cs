using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Apex.Client;
using Apex.Server.Storage;
using Apex.Tests.Infrastructure;
using OpenAI;
using OpenAI.Chat;

namespace Apex.Tests.Interop;

/// <summary>The OpenAI-compatible door under /v1, driven by the OpenAI .NET SDK, the openai npm client and plain HTTP.</summary>
public sealed class OpenAiTests(ScriptedServer shared) : IClassFixture<ScriptedServer>
{
    private ApexTestServer Server => shared.Server;

    private ChatClient Chat(string key) =>
        new("apex", new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(Server.BaseAddress, "v1"), RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0) });

    [Fact]
    public async Task TheOpenAiDotNetSdkGetsAStreamedAndANonStreamedAnswerWithUsage()
    {
        var ct = Waits.Timeout();
        using var user = await Server.NewUserAsync();
        var chat = Chat(user.Tokens!.AccessToken);

        var result = await chat.CompleteChatAsync([new SystemChatMessage("Be brief."), new UserChatMessage("How do I cut my LLM costs?")], cancellationToken: ct);
        var completion = result.Value;
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.True(completion.Usage.InputTokenCount > 0 && completion.Usage.OutputTokenCount > 0);
        Assert.Equal(completion.Usage.InputTokenCount + completion.Usage.OutputTokenCount, completion.Usage.TotalTokenCount);
        Assert.True(result.GetRawResponse().Headers.TryGetValue("x-apex-thread-id", out var threadId));
        Assert.True(result.GetRawResponse().Headers.TryGetValue("x-apex-run-id", out var runId));
        // An ordinary run: its answer is the stored one, its usage the run's.
        var messages = await user.ListMessagesAsync(threadId!, cancellationToken: ct);
        Assert.Equal(["user", "assistant"], messages.Items.Select(m => m.Role));
        Assert.Equal(messages.Items[1].Content, completion.Content[0].Text);
        Assert.Equal(RunStatus.Completed, (await user.GetRunAsync(runId!, ct)).Status);
        // The system message went along as context of the new thread's message.
        Assert.Contains("system: Be brief.", messages.Items[0].Content, StringComparison.Ordinal);

        var streamed = new StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("How do I cut my LLM costs?")], new ChatCompletionOptions(), ct))
        {
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.NotNull(usage);
        Assert.True(usage.InputTokenCount > 0);
        Assert.Contains("Getting started with your workload analysis", streamed.ToString(), StringComparison.Ordinal);
        var threads = await user.ListThreadsAsync(cancellationToken: ct);
        Assert.Equal(2, threads.Items.Count);
        Assert.Equal(streamed.ToString(), (await user.ListMessagesAsync(threads.Items[0].Id, cancellationToken: ct)).Items[1].Content);
    }

    [Fact]
    public async Task TheOpenAiNpmClientGetsChatAndResponsesStreamedAndNot()
    {
        var ct = Waits.Timeout(90);
        using var user = await Server.NewUserAsync();
        using var seen = await NodeScripts.RunAsync("openai-client.mjs", "openai", [Server.BaseAddress.ToString(), user.Tokens!.AccessToken], ct);
        var root = seen.RootElement;
        Assert.Equal(["apex"], root.GetProperty("models").EnumerateArray().Select(m => m.GetString()));

        var chat = root.GetProperty("chat");
        Assert.Contains("Apex", chat.GetProperty("content").GetString(), StringComparison.Ordinal);
        Assert.Equal("stop", chat.GetProperty("finishReason").GetString());
        Assert.True(chat.GetProperty("usage").GetProperty("prompt_tokens").GetInt64() > 0);
        var runId = chat.GetProperty("runId").GetString()!;
        Assert.Equal(chat.GetProperty("threadId").GetString(), (await user.GetRunAsync(runId, ct)).ThreadId);

        var streamed = root.GetProperty("streamedChat");
        Assert.Equal(chat.GetProperty("content").GetString(), streamed.GetProperty("content").GetString());
        Assert.Equal("stop", streamed.GetProperty("finishReason").GetString());
        Assert.True(streamed.GetProperty("usage").GetProperty("completion_tokens").GetInt64() > 0);

        var response = root.GetProperty("response");
        Assert.Equal("completed", response.GetProperty("status").GetString());
        Assert.Equal(chat.GetProperty("content").GetString(), response.GetProperty("text").GetString());
        Assert.True(response.GetProperty("usage").GetProperty("output_tokens").GetInt64() > 0);

        var streamedResponse = root.GetProperty("streamedResponse");
        var events = streamedResponse.GetProperty("events").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.Equal("response.created", events[0]);
        Assert.Equal("response.completed", events[^1]);
        Assert.Contains("response.output_text.delta", events);
        Assert.Contains("response.output_text.done", events);
        Assert.Equal(chat.GetProperty("content").GetString(), streamedResponse.GetProperty("text").GetString());
        Assert.Equal(chat.GetProperty("content").GetString(), streamedResponse.GetProperty("completedText").GetString());

        var wrongKey = root.GetProperty("wrongKey");
        Assert.Equal(401, wrongKey.GetProperty("status").GetInt32());
        Assert.Equal("invalid_api_key", wrongKey.GetProperty("code").GetString());
        Assert.True(wrongKey.GetProperty("isAuthError").GetBoolean());
    }

    [Fact]
    public async Task AWrongKeyGetsOpenAisUnauthorizedErrorShape()
    {
        var ct = Waits.Timeout();
        using var http = new HttpClient { BaseAddress = Server.BaseAddress };
        foreach (var bearer in new[] { null, "not-a-token" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
            { Content = JsonContent.Create(new { model = "apex", messages = new[] { new { role = "user", content = "hi" } } }) };
            if (bearer is not null) request.Headers.Authorization = new("Bearer", bearer);
            using var response = await http.SendAsync(request, ct);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
            var error = body.RootElement.GetProperty("error");
            Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
            Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        }

        var failure = await Assert.ThrowsAsync<ClientResultException>(() => Chat("not-a-token").CompleteChatAsync([new UserChatMessage("hi")], cancellationToken: ct));
        Assert.Equal(401, failure.Status);
    }

    [Fact]
    public async Task AnotherUsersThreadIsNotReachableThroughV1()
    {
        var ct = Waits.Timeout();
        using var owner = await Server.NewUserAsync();
        using var stranger = await Server.NewUserAsync();
        var first = await Chat(owner.Tokens!.AccessToken).CompleteChatAsync([new UserChatMessage("Hello")], cancellationToken: ct);
        Assert.True(first.GetRawResponse().Headers.TryGetValue("x-apex-thread-id", out var ownersThread));

        // The owner goes on with the thread by the header.
        using (var own = await PostChatAsync(owner, ownersThread!, ct))
        {
            Assert.Equal(HttpStatusCode.OK, own.StatusCode);
            Assert.Equal(ownersThread, own.Headers.GetValues("x-apex-thread-id").Single());
        }
        Assert.Equal(4, (await owner.ListMessagesAsync(ownersThread!, cancellationToken: ct)).Items.Count);

        // The stranger, signed in with an API key of their own (a key is a bearer here as anywhere), naming it is refused as for a thread that does not exist; the owner's thread gets no message and no run.
        stranger.UseApiKey((await stranger.CreateApiKeyAsync("door", cancellationToken: ct)).Key);
        using var theirs = await PostChatAsync(stranger, ownersThread!, ct);
        Assert.Equal(HttpStatusCode.NotFound, theirs.StatusCode);
        using var body = JsonDocument.Parse(await theirs.Content.ReadAsStringAsync(ct));
        Assert.Equal("thread_not_found", body.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Empty((await stranger.ListThreadsAsync(cancellationToken: ct)).Items);
        Assert.Equal(4, (await owner.ListMessagesAsync(ownersThread!, cancellationToken: ct)).Items.Count);
        Assert.Equal(2, (await owner.ListRunsAsync(ownersThread!, cancellationToken: ct)).Items.Count);
    }

    [Fact]
    public async Task ClosingAStreamedCompletionCancelsTheRun()
    {
        var ct = Waits.Timeout();
        using var user = await Server.NewUserAsync();
        string threadId, runId;
        using (var request = user.Authorized(HttpMethod.Post, "v1/chat/completions",
                   JsonContent.Create(new { model = "apex", stream = true, messages = new[] { new { role = "user", content = "[slow] how much do I spend?" } } })))
        using (var response = await user.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            threadId = response.Headers.GetValues("x-apex-thread-id").Single();
            runId = response.Headers.GetValues("x-apex-run-id").Single();
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
            Assert.StartsWith("data: {", await reader.ReadLineAsync(ct), StringComparison.Ordinal);
        }

        var cancelled = Assert.IsType<RunCancelled>(await user.TerminalEventAsync(threadId, runId, ct));
        Assert.Equal("client_aborted", cancelled.Data.Reason);
    }

    [Fact]
    public async Task AnUnknownModelAndAMalformedBodyAreAnsweredInOpenAisShape()
    {
        var ct = Waits.Timeout();
        using var user = await Server.NewUserAsync();
        using var request = user.Authorized(HttpMethod.Post, "v1/chat/completions",
            JsonContent.Create(new { model = "gpt-4o", messages = new[] { new { role = "user", content = "hi" } } }));
        using var response = await user.Http.SendAsync(request, ct);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        Assert.Equal("model_not_found", body.RootElement.GetProperty("error").GetProperty("code").GetString());

        using var malformed = user.Authorized(HttpMethod.Post, "v1/responses", new StringContent("{\"input\": ", Encoding.UTF8, "application/json"));
        using var refused = await user.Http.SendAsync(malformed, ct);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        using var problem = JsonDocument.Parse(await refused.Content.ReadAsStringAsync(ct));
        Assert.Equal("invalid_json", problem.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Empty((await user.ListThreadsAsync(cancellationToken: ct)).Items);
    }

    private static async Task<HttpResponseMessage> PostChatAsync(ApexClient user, string threadId, CancellationToken ct)
    {
        using var request = user.Authorized(HttpMethod.Post, "v1/chat/completions",
            JsonContent.Create(new { model = "apex", messages = new[] { new { role = "user", content = "And latency?" } } }));
        request.Headers.Add("x-apex-thread-id", threadId);
        return await user.Http.SendAsync(request, ct);
    }
}
