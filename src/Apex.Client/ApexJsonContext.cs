using System.Text.Json;
using System.Text.Json.Serialization;

namespace Apex.Client;

/// <summary>The one serializer context for every wire type: snake_case, source-generated.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web,
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    AllowOutOfOrderMetadataProperties = true)]
[JsonSerializable(typeof(ApexEvent))]
[JsonSerializable(typeof(ClientFrame))]
[JsonSerializable(typeof(UserMessagePayload))]
[JsonSerializable(typeof(StopAgentPayload))]
[JsonSerializable(typeof(ResumePayload))]
[JsonSerializable(typeof(ThreadRefPayload))]
[JsonSerializable(typeof(RegisterRequest))]
[JsonSerializable(typeof(LoginRequest))]
[JsonSerializable(typeof(RefreshRequest))]
[JsonSerializable(typeof(TokenResponse))]
[JsonSerializable(typeof(UserDto))]
[JsonSerializable(typeof(WsTicketResponse))]
[JsonSerializable(typeof(CreateThreadRequest))]
[JsonSerializable(typeof(UpdateThreadRequest))]
[JsonSerializable(typeof(ThreadDto))]
[JsonSerializable(typeof(MessageDto))]
[JsonSerializable(typeof(RunDto))]
[JsonSerializable(typeof(SendMessageRequest))]
[JsonSerializable(typeof(SendMessageResponse))]
[JsonSerializable(typeof(Page<ThreadDto>))]
[JsonSerializable(typeof(Page<MessageDto>))]
[JsonSerializable(typeof(Page<RunDto>))]
[JsonSerializable(typeof(WorkloadReport))]
[JsonSerializable(typeof(WorkloadSummaryDto))]
[JsonSerializable(typeof(SampleWorkloadRequest))]
[JsonSerializable(typeof(Page<ToolUsageDto>))]
[JsonSerializable(typeof(JsonElement))]
[JsonSerializable(typeof(Dictionary<string, object?>))]
public sealed partial class ApexJsonContext : JsonSerializerContext;
